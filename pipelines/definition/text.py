"""Definition text: JSON or YAML parsed within bounds, line numbers, YAML dumped back.

``parse_document`` turns user text into plain data (not validated yet) and
raises ``DefinitionError`` — nothing else — on any failure, with the line and
column of syntax errors. The API and the editor feed user text straight in,
and YAML aliases can expand a small text into a huge tree, hence the bounds.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from core.checker import Problem, no_cycle_collection, quoted
from pipelines.definition.errors import DefinitionError

MAX_TEXT_CHARS = 1 << 20  # 1 MiB: SPEC §10 answers a definition this large within 2 s
MAX_NODES = 100_000
MAX_DEPTH = 64


class _DuplicateKey(ValueError):
    """A key appears twice in one object (JSON)."""


def _no_duplicate_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: a repeated key is an error, not "last one wins"."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"duplicate key {quoted(key)}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    """json hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not allowed")


def _parse_json(text: str) -> Any:
    """JSON text -> data; every failure becomes a DefinitionError."""
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicate_pairs, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        message = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    except RecursionError:
        message = "invalid JSON: nested too deeply"
    except ValueError as exc:
        message = f"invalid JSON: {exc}"
    raise DefinitionError([Problem("", message)])


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _YamlLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """``yaml.safe_load`` with two changes.

    Dates stay strings: a definition is JSON-shaped, and ``start: 2024-01-01``
    must not turn into a ``datetime``. A key repeated in one mapping is an
    error (YAML itself forbids it; PyYAML silently keeps the last one).
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may be overridden on purpose
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: PyYAML reports it below
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return dict(super().construct_mapping(node, deep=deep))


def _parse_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """YAML text -> (data, the node tree it was built from); failures are DefinitionErrors.

    What ``yaml.load`` does, keeping the nodes: they hold the line of every
    value, and composing a large text a second time for them costs as much
    as the parse.
    """
    # Safe: _YamlLoader is a SafeLoader subclass.
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        message = f"invalid YAML{where}: {exc.problem or exc.context}"
    except RecursionError:
        message = "invalid YAML: nested too deeply"
    except Exception as exc:  # yaml.YAMLError, and odd errors from constructors
        message = f"invalid YAML: {exc}"
    finally:
        loader.dispose()
    raise DefinitionError([Problem("", message)])


def compose_yaml(text: str) -> yaml.Node | None:
    """The YAML node tree of ``text`` (JSON text too), or None when it does not parse.

    For the lines of values in text that ``parse_document`` read as JSON.
    """
    try:
        with no_cycle_collection():
            return yaml.compose(text, Loader=_YamlLoader)
    except Exception:  # unparsable: its parse error already names its line
        return None


class _TooBig(Exception):
    """The parsed document is too deep or too large."""


def _measure(value: Any, depth: int, memo: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(nodes, height) of ``value`` as if YAML aliases were expanded.

    Memoized by identity, so a shared (aliased) node is measured once: a
    "billion laughs" document is caught in time linear in its text.
    """
    if not isinstance(value, dict | list):
        return 1, 0
    key = id(value)
    if key in memo:
        nodes, height = memo[key]
    else:
        if depth > MAX_DEPTH:
            raise _TooBig(f"nested more than {MAX_DEPTH} levels deep")
        children = list(value.values()) if isinstance(value, dict) else value
        nodes, height = 1, 0
        for child in children:
            child_nodes, child_height = _measure(child, depth + 1, memo)
            nodes += child_nodes
            height = max(height, child_height + 1)
            if nodes > MAX_NODES:
                raise _TooBig(f"more than {MAX_NODES} values")
        memo[key] = (nodes, height)
    if depth + height > MAX_DEPTH:
        raise _TooBig(f"nested more than {MAX_DEPTH} levels deep")
    return nodes, height


def parse_text(text: str, fmt: str | None = None) -> Any:
    """Parse JSON or YAML text into plain data (not validated yet).

    ``fmt`` is "json", "yaml" or None (try JSON, else YAML). Raises
    ``DefinitionError`` — and nothing else — on any failure, with the line and
    column of syntax errors.
    """
    return parse_document(text, fmt)[0]


def parse_document(text: str, fmt: str | None = None) -> tuple[Any, yaml.Node | None]:
    """``parse_text``, with the YAML node tree of the text (None when it was read as JSON).

    The nodes give the line of each value (the editor points at problems
    with them) without composing the text a second time.
    """
    with no_cycle_collection():
        return _parse_document(text, fmt)


def _parse_document(text: str, fmt: str | None) -> tuple[Any, yaml.Node | None]:
    if not isinstance(text, str):
        raise DefinitionError([Problem("", f"expected text, got {type(text).__name__}")])
    if fmt not in (None, "json", "yaml"):
        raise DefinitionError([Problem("", f"unknown format {fmt!r} (expected json or yaml)")])
    if len(text) > MAX_TEXT_CHARS:
        raise DefinitionError([Problem("", f"document longer than {MAX_TEXT_CHARS} characters")])
    node: yaml.Node | None = None
    if fmt == "json":
        data = _parse_json(text)
    elif fmt == "yaml":
        data, node = _parse_yaml(text)
    else:
        try:
            data = _parse_json(text)
        except DefinitionError as json_error:
            try:
                data, node = _parse_yaml(text)
            except DefinitionError:
                # Text opening like JSON was most likely meant as JSON, and
                # JSON's message is the clearer one then.
                if text.lstrip().startswith(("{", "[")):
                    raise json_error from None
                raise
    try:
        _measure(data, 0, {})
    except _TooBig as exc:
        raise DefinitionError([Problem("", f"document too large: {exc}")]) from None
    return data, node


class _YamlDumper(yaml.SafeDumper):
    """Block style; multi-line strings (SQL) as ``|`` blocks; no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Outside double quotes, YAML reads NEL, LS and PS as line breaks and
    # PyYAML may write them raw: only double quotes escape them. Otherwise
    # PyYAML falls back to quotes by itself when a | block cannot hold the
    # text exactly (trailing spaces, special characters).
    style = '"' if any(ch in value for ch in "\x85\u2028\u2029") else None
    if style is None and "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _flowable(value: Any) -> bool:
    """Short enough to write inline: scalars, ``{param: x}`` and lists of those."""
    if isinstance(value, str):
        return "\n" not in value
    if isinstance(value, list):
        return all(_flowable(item) for item in value)
    if isinstance(value, dict):
        return list(value) == ["param"] and _flowable(value["param"])
    return True


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    # `columns: [id, email]` and `[amount, '>=', {param: x}]` read like the
    # examples in the docs; lists of objects (tasks, checks) stay blocks.
    flow = _flowable(value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_YamlDumper.add_representer(str, _represent_str)
_YamlDumper.add_representer(list, _represent_list)


def dump_yaml(defn: dict[str, Any]) -> str:
    """A normalized definition as YAML, keys in their order; ``load_text`` reads it back equal."""
    return yaml.dump(
        defn,
        Dumper=_YamlDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
