"""Transformations (SPEC §2): compiled into SQL when possible, else run on batches.

``compile_pushdown`` wraps the source query once per transformation
(``SELECT … FROM (<previous>) AS _dd_tN``), which keeps every step's meaning
independent of the others; PostgreSQL, MariaDB and SQLite all flatten such
subqueries. It stops at the first step the dialect cannot express (sha256
on SQLite); that step and everything after it runs in Python on batches
(``BatchTransformer``). Values (filter operands, ``{param: name}``) are
always bound parameters, identifiers always quoted by the dialect.
"""

from __future__ import annotations

# Security review (bandit B608, marked "# nosec B608" line by line): the SQL
# built here with f-strings joins only identifiers quoted by the dialect
# (connectors.base refuses what quoting cannot make safe) and SQL this module
# generated; values always travel as bound parameters. A source `query` or a
# `sql` check is the pipeline author's own SQL, run on a connection they may
# use (SPEC §5), so it is not an injection.
import gc
import hashlib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connectors.base import ConnectorError, Dialect, check_identifier
from connectors.types import CAST_TYPES, Column, parser_for, text_of

FUNCTIONS = ("filter", "select", "rename", "cast", "dedupe", "mask", "aggregate")
OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null", "like")
AGG_FUNCS = ("count", "sum", "min", "max", "avg")


class NotPushable(Exception):
    """This step cannot be expressed in the dialect: run it on batches."""


@dataclass
class Compiled:
    """A source query with the pushed-down steps, and the steps left for batches."""

    sql: str
    params: dict[str, Any]
    columns: list[Column]
    rest: list[dict[str, Any]] = field(default_factory=list)


def _where(t: dict[str, Any], i: int) -> str:
    return f"transformations[{i}] ({t.get('name') or t.get('function')})"


def _need(columns: list[Column], names: Any, t: dict[str, Any], i: int) -> list[str]:
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names:
        raise ConnectorError(f"{_where(t, i)}: expected a non-empty list of columns")
    known = {c.name for c in columns}
    for name in names:
        check_identifier(name)
        if name not in known:
            raise ConnectorError(f"{_where(t, i)}: unknown column {name!r}")
    return list(names)


def _resolve(value: Any, run_params: dict[str, Any]) -> Any:
    """A filter operand: literals as given, ``{param: name}`` from the run's parameters."""
    if isinstance(value, dict) and set(value) == {"param"}:
        name = value["param"]
        if name not in run_params:
            raise ConnectorError(f"unknown parameter {name!r}")
        return run_params[name]
    if isinstance(value, list):
        return [_resolve(v, run_params) for v in value]
    return value


def _conditions(
    params: dict[str, Any], columns: list[Column], t: dict[str, Any], i: int
) -> list[tuple]:
    """``[(column, op, value)]`` of a filter step (``columns`` means not-null)."""
    conditions: list[tuple] = []
    if "columns" in params:
        for name in _need(columns, params["columns"], t, i):
            conditions.append((name, "not_null", None))
    for cond in params.get("where") or []:
        if not isinstance(cond, list | tuple) or len(cond) not in (2, 3):
            raise ConnectorError(f"{_where(t, i)}: a where condition is [column, op, value]")
        name, op = cond[0], cond[1]
        _need(columns, [name], t, i)
        if op not in OPS:
            raise ConnectorError(f"{_where(t, i)}: unknown operator {op!r}")
        if op in ("is_null", "not_null") and len(cond) == 3:
            raise ConnectorError(f"{_where(t, i)}: {op} takes no value")
        if op not in ("is_null", "not_null") and len(cond) != 3:
            raise ConnectorError(f"{_where(t, i)}: {op} needs a value")
        conditions.append((name, op, cond[2] if len(cond) == 3 else None))
    return conditions


# ------------------------------------------------------------------ push-down


class _Binder:
    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def __call__(self, value: Any) -> str:
        name = f"_dd_p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"


def compile_pushdown(
    dialect: Dialect,
    base_sql: str,
    base_params: dict[str, Any],
    columns: list[Column],
    transformations: list[dict[str, Any]],
    run_params: dict[str, Any],
    *,
    enabled: bool | int = True,
) -> Compiled:
    """Push as many leading steps as the dialect can express into ``base_sql``.

    ``enabled`` False pushes none; an int pushes at most that many (tests
    and benchmarks use it to force steps onto batches).
    """
    params = dict(base_params)
    bind = _Binder(params)
    sql, cols = base_sql, list(columns)
    limit = len(transformations) if enabled is True else int(enabled)
    for i, t in enumerate(transformations):
        if i >= limit:
            return Compiled(sql, params, cols, list(transformations[i:]))
        try:
            sql, cols = _step_sql(dialect, t, i, sql, cols, bind, run_params)
        except NotPushable:
            return Compiled(sql, params, cols, list(transformations[i:]))
    return Compiled(sql, params, cols, [])


def _step_sql(
    d: Dialect,
    t: dict[str, Any],
    i: int,
    inner: str,
    cols: list[Column],
    bind: _Binder,
    run_params: dict[str, Any],
) -> tuple[str, list[Column]]:
    fn, p = t.get("function"), t.get("params") or {}
    q = d.quote
    alias = f"_dd_t{i}"
    star = ", ".join(q(c.name) for c in cols)
    if fn == "filter":
        parts = []
        for name, op, raw in _conditions(p, cols, t, i):
            col = q(name)
            if op == "is_null":
                parts.append(f"{col} IS NULL")
            elif op == "not_null":
                parts.append(f"{col} IS NOT NULL")
            elif op in ("in", "not_in"):
                values = _resolve(raw, run_params)
                if not isinstance(values, list):
                    raise ConnectorError(f"{_where(t, i)}: {op} needs a list")
                if not values:
                    parts.append("1 = 0" if op == "in" else "1 = 1")
                else:
                    marks = ", ".join(bind(v) for v in values)
                    parts.append(f"{col} {'IN' if op == 'in' else 'NOT IN'} ({marks})")
            else:
                sql_op = {"=": "=", "!=": "<>", "like": "LIKE"}.get(op, op)
                parts.append(f"{col} {sql_op} {bind(_resolve(raw, run_params))}")
        where = " AND ".join(parts) or "1 = 1"
        return f"SELECT {star} FROM ({inner}) AS {alias} WHERE {where}", cols  # nosec B608
    if fn == "select":
        names = _need(cols, p.get("columns"), t, i)
        by_name = {c.name: c for c in cols}
        return (
            f"SELECT {', '.join(q(n) for n in names)} FROM ({inner}) AS {alias}",  # nosec B608
            [by_name[n] for n in names],
        )
    if fn == "rename":
        mapping = _rename_mapping(p, cols, t, i)
        out = [c.renamed(mapping.get(c.name, c.name)) for c in cols]
        renamed = ", ".join(
            f"{q(c.name)} AS {q(mapping[c.name])}" if c.name in mapping else q(c.name) for c in cols
        )
        return f"SELECT {renamed} FROM ({inner}) AS {alias}", out  # nosec B608
    if fn == "cast":
        targets = _cast_targets(p, cols, t, i)
        exprs, out = [], []
        for c in cols:
            if c.name in targets:
                exprs.append(f"{d.cast(q(c.name), targets[c.name], c.type)} AS {q(c.name)}")
                out.append(c.retyped(CAST_TYPES[targets[c.name]]))
            else:
                exprs.append(q(c.name))
                out.append(c)
        return f"SELECT {', '.join(exprs)} FROM ({inner}) AS {alias}", out  # nosec B608
    if fn == "dedupe":
        keys = _need(cols, p["keys"], t, i) if p.get("keys") else [c.name for c in cols]
        if not p.get("keys"):
            return f"SELECT DISTINCT {star} FROM ({inner}) AS {alias}", cols  # nosec B608
        part = ", ".join(q(k) for k in keys)
        ranked = (
            f"SELECT {star}, ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY {part}) AS _dd_rn"  # nosec B608
            f" FROM ({inner}) AS {alias}"
        )
        return f"SELECT {star} FROM ({ranked}) AS {alias}r WHERE _dd_rn = 1", cols  # nosec B608
    if fn == "mask":
        masked = set(_need(cols, p.get("columns"), t, i))
        method = p.get("method", "sha256")
        if method not in ("sha256", "redact"):
            raise ConnectorError(f"{_where(t, i)}: method must be sha256 or redact")
        if method == "sha256" and not d.has_sha256:
            raise NotPushable
        mask_exprs: list[str] = []
        out = []
        for c in cols:
            if c.name not in masked:
                mask_exprs.append(q(c.name))
                out.append(c)
            elif method == "sha256":
                mask_exprs.append(f"{d.sha256(q(c.name))} AS {q(c.name)}")
                out.append(c.retyped("text"))
            else:
                mask_exprs.append(f"{d.null_of(c)} AS {q(c.name)}")
                out.append(c)
        return f"SELECT {', '.join(mask_exprs)} FROM ({inner}) AS {alias}", out  # nosec B608
    if fn == "aggregate":
        group_by, metrics = _aggregate_spec(p, cols, t, i)
        by_name = {c.name: c for c in cols}
        agg_exprs = [q(g) for g in group_by]
        out = [by_name[g] for g in group_by]
        for out_name, (func, column) in metrics.items():
            arg = "*" if column is None or column == "*" else q(column)
            agg_exprs.append(f"{func.upper()}({arg}) AS {q(out_name)}")
            source = by_name.get(column) if column is not None else None
            out.append(Column(out_name, _agg_type(func, source)))
        group = f" GROUP BY {', '.join(q(g) for g in group_by)}" if group_by else ""
        return f"SELECT {', '.join(agg_exprs)} FROM ({inner}) AS {alias}{group}", out  # nosec B608
    raise ConnectorError(f"{_where(t, i)}: unknown function {fn!r}")


def _rename_mapping(
    p: dict[str, Any], cols: list[Column], t: dict[str, Any], i: int
) -> dict[str, str]:
    mapping = p.get("mapping")
    if not isinstance(mapping, dict) or not mapping:
        raise ConnectorError(f"{_where(t, i)}: mapping must be an object")
    _need(cols, list(mapping), t, i)
    for new in mapping.values():
        check_identifier(new)
    names = [mapping.get(c.name, c.name) for c in cols]
    if len(set(names)) != len(names):
        raise ConnectorError(f"{_where(t, i)}: rename gives two columns the same name")
    return dict(mapping)


def _cast_targets(
    p: dict[str, Any], cols: list[Column], t: dict[str, Any], i: int
) -> dict[str, str]:
    targets = p.get("columns")
    if not isinstance(targets, dict) or not targets:
        raise ConnectorError(f"{_where(t, i)}: columns must be an object {{column: type}}")
    _need(cols, list(targets), t, i)
    for name, type_ in targets.items():
        if type_ not in CAST_TYPES:
            raise ConnectorError(f"{_where(t, i)}: cannot cast {name!r} to {type_!r}")
    return dict(targets)


def _aggregate_spec(
    p: dict[str, Any], cols: list[Column], t: dict[str, Any], i: int
) -> tuple[list[str], dict[str, tuple[str, str | None]]]:
    group_by = _need(cols, p["group_by"], t, i) if p.get("group_by") else []
    metrics = p.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise ConnectorError(f"{_where(t, i)}: metrics must be an object {{out: [func, column]}}")
    spec: dict[str, tuple[str, str | None]] = {}
    for out_name, item in metrics.items():
        check_identifier(out_name)
        if (
            not isinstance(item, list | tuple)
            or len(item) not in (1, 2)
            or item[0] not in AGG_FUNCS
        ):
            raise ConnectorError(f"{_where(t, i)}: metric {out_name!r} must be [func, column]")
        column = item[1] if len(item) == 2 else None
        if column not in (None, "*"):
            _need(cols, [column], t, i)
        elif item[0] != "count":
            raise ConnectorError(f"{_where(t, i)}: {item[0]} needs a column")
        spec[out_name] = (item[0], column)
    return group_by, spec


def _agg_type(func: str, column: Column | None) -> str:
    if func == "count":
        return "bigint"
    source = column.type if column else "bigint"
    if func in ("min", "max"):
        return source
    if source == "float":
        return "float"
    return "numeric"


def needed_columns(
    columns: list[Column], transformations: list[dict[str, Any]]
) -> list[str] | None:
    """The source columns the steps can ever read, or None when they may read all.

    Steps before the first ``select`` or ``aggregate`` read what they name;
    that step then drops the rest. A ``rename`` or a key-less ``dedupe``
    before it stops the analysis (None: read every column).
    """
    known = {c.name for c in columns}
    used: set[str] = set()
    for t in transformations:
        fn, p = t.get("function"), t.get("params") or {}
        names: list[Any]
        if fn == "select":
            names = list(p.get("columns") or [])
            used.update(n for n in names if isinstance(n, str))
            return [c.name for c in columns if c.name in used] if used <= known else None
        if fn == "aggregate":
            used.update(p.get("group_by") or [])
            for item in (p.get("metrics") or {}).values():
                if isinstance(item, list | tuple) and len(item) == 2 and item[1] not in (None, "*"):
                    used.add(item[1])
            return [c.name for c in columns if c.name in used] if used <= known else None
        if fn == "filter":
            names = list(p.get("columns") or []) + [c[0] for c in p.get("where") or [] if c]
        elif fn in ("mask",):
            names = list(p.get("columns") or [])
        elif fn == "cast":
            names = list(p.get("columns") or {})
        elif fn == "dedupe" and p.get("keys"):
            names = list(p["keys"])
        else:
            return None
        used.update(n for n in names if isinstance(n, str))
    return None


# ------------------------------------------------------------------ batches


class _Step:
    columns: list[Column]

    def apply(self, rows: list[tuple]) -> list[tuple]:
        return rows

    def finish(self) -> list[tuple]:
        return []


class BatchTransformer:
    """The steps that could not be pushed down, applied batch by batch.

    Stateless steps work on each batch alone; ``dedupe`` remembers the keys
    it has seen and ``aggregate`` holds one accumulator per group, so memory
    grows with distinct keys or groups, never with the row count.
    """

    def __init__(
        self,
        columns: list[Column],
        transformations: list[dict[str, Any]],
        run_params: dict[str, Any],
        offset: int = 0,
    ) -> None:
        self.steps: list[_Step] = []
        cols = list(columns)
        for i, t in enumerate(transformations, start=offset):
            step = _make_step(t, i, cols, run_params)
            self.steps.append(step)
            cols = step.columns
        self.columns = cols

    def __bool__(self) -> bool:
        return bool(self.steps)

    def apply(self, rows: list[tuple], start: int = 0) -> list[tuple]:
        for step in self.steps[start:]:
            if not rows:
                break
            rows = step.apply(rows)
        return rows

    def finish(self) -> list[tuple]:
        """Rows held back until the end (aggregates), through the later steps."""
        out: list[tuple] = []
        for index, step in enumerate(self.steps):
            held = step.finish()
            if held:
                out.extend(self.apply(held, index + 1))
        return out


def _make_step(t: dict[str, Any], i: int, cols: list[Column], run_params: dict[str, Any]) -> _Step:
    fn, p = t.get("function"), t.get("params") or {}
    position = {c.name: n for n, c in enumerate(cols)}
    if fn == "filter":
        return _Filter(
            cols,
            [
                (position[n], op, _coerce(_resolve(v, run_params), cols[position[n]]))
                for n, op, v in _conditions(p, cols, t, i)
            ],
        )
    if fn == "select":
        names = _need(cols, p.get("columns"), t, i)
        return _Project(cols, [position[n] for n in names], [cols[position[n]] for n in names])
    if fn == "rename":
        mapping = _rename_mapping(p, cols, t, i)
        return _Project(
            cols, list(range(len(cols))), [c.renamed(mapping.get(c.name, c.name)) for c in cols]
        )
    if fn == "cast":
        targets = _cast_targets(p, cols, t, i)
        return _Map(
            cols,
            {position[n]: _caster(ty) for n, ty in targets.items()},
            [c.retyped(CAST_TYPES[targets[c.name]]) if c.name in targets else c for c in cols],
        )
    if fn == "dedupe":
        keys = _need(cols, p["keys"], t, i) if p.get("keys") else [c.name for c in cols]
        return _Dedupe(cols, [position[k] for k in keys])
    if fn == "mask":
        names = _need(cols, p.get("columns"), t, i)
        method = p.get("method", "sha256")
        if method not in ("sha256", "redact"):
            raise ConnectorError(f"{_where(t, i)}: method must be sha256 or redact")
        func = _sha256 if method == "sha256" else (lambda v: None)
        return _Map(
            cols,
            {position[n]: func for n in names},
            [c.retyped("text") if c.name in names and method == "sha256" else c for c in cols],
        )
    if fn == "aggregate":
        group_by, metrics = _aggregate_spec(p, cols, t, i)
        by_name = {c.name: c for c in cols}
        out = [by_name[g] for g in group_by] + [
            Column(name, _agg_type(func, by_name.get(col) if col else None))
            for name, (func, col) in metrics.items()
        ]
        return _Aggregate(
            out,
            [position[g] for g in group_by],
            [
                (func, None if col is None or col == "*" else position[col])
                for func, col in metrics.values()
            ],
        )
    raise ConnectorError(f"{_where(t, i)}: unknown function {fn!r}")


def _coerce(value: Any, column: Column) -> Any:
    """A filter operand as the column's Python type, so comparisons work (dates, decimals)."""
    if isinstance(value, list):
        return [_coerce(v, column) for v in value]
    if isinstance(value, str) and column.type not in ("text", "uuid", "json"):
        parse = parser_for(column.type)
        if parse is not None:
            try:
                return parse(value)
            except (ValueError, ArithmeticError):
                return value
    if isinstance(value, float) and column.type == "numeric":
        return Decimal(str(value))
    return value


def _like(pattern: str) -> Callable[[Any], bool]:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    match = re.compile(regex, re.S).fullmatch
    return lambda v: v is not None and match(str(v)) is not None


_COMPARE = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class _Filter(_Step):
    def __init__(self, cols: list[Column], conditions: list[tuple[int, str, Any]]) -> None:
        self.columns = cols
        self.tests: list[tuple[int, Callable[[Any], bool]]] = []
        for pos, op, value in conditions:
            if op == "is_null":
                self.tests.append((pos, lambda v: v is None))
            elif op == "not_null":
                self.tests.append((pos, lambda v: v is not None))
            elif op == "in":
                allowed = list(value)
                self.tests.append((pos, lambda v, a=allowed: v is not None and v in a))  # type: ignore[misc]
            elif op == "not_in":
                banned = list(value)
                self.tests.append((pos, lambda v, b=banned: v is not None and v not in b))  # type: ignore[misc]
            elif op == "like":
                self.tests.append((pos, _like(str(value))))
            else:
                compare = _COMPARE[op]
                # SQL semantics: a comparison with NULL is not true.
                self.tests.append(
                    (pos, lambda v, c=compare, x=value: v is not None and x is not None and c(v, x))  # type: ignore[misc]
                )

    def apply(self, rows: list[tuple]) -> list[tuple]:
        # Columnar: one pass per condition over the surviving rows.
        for pos, test in self.tests:
            rows = [r for r in rows if test(r[pos])]
            if not rows:
                break
        return rows


class _Project(_Step):
    def __init__(self, cols: list[Column], positions: list[int], out: list[Column]) -> None:
        self.columns = out
        self.identity = positions == list(range(len(cols)))
        self.get = operator.itemgetter(*positions) if len(positions) > 1 else None
        self.positions = positions

    def apply(self, rows: list[tuple]) -> list[tuple]:
        if self.identity:
            return rows
        if self.get is None:
            pos = self.positions[0]
            return [(r[pos],) for r in rows]
        return list(map(self.get, rows))


class _Map(_Step):
    def __init__(
        self, cols: list[Column], funcs: dict[int, Callable[[Any], Any]], out: list[Column]
    ) -> None:
        self.columns = out
        self.funcs = funcs

    def apply(self, rows: list[tuple]) -> list[tuple]:
        # Columnar: transpose, map the touched columns, transpose back.
        columns = list(zip(*rows, strict=True))
        for pos, func in self.funcs.items():
            columns[pos] = tuple(map(func, columns[pos]))
        return list(zip(*columns, strict=True))


class _Dedupe(_Step):
    def __init__(self, cols: list[Column], keys: list[int]) -> None:
        self.columns = cols
        self.key = operator.itemgetter(*keys) if len(keys) > 1 else (lambda r, k=keys[0]: r[k])
        self.seen: set[Any] = set()

    def apply(self, rows: list[tuple]) -> list[tuple]:
        out = []
        seen, key = self.seen, self.key
        for row in rows:
            k = _hashable(key(row))
            if k not in seen:
                seen.add(k)
                out.append(row)
        return out


def _hashable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return repr(value)
    if isinstance(value, tuple):
        return tuple(_hashable(v) for v in value)
    return value


class _Aggregate(_Step):
    def __init__(
        self, out: list[Column], group: list[int], metrics: list[tuple[str, int | None]]
    ) -> None:
        self.columns = out
        self.group = group
        self.metrics = metrics
        self.groups: dict[tuple, list[Any]] = {}

    def apply(self, rows: list[tuple]) -> list[tuple]:
        groups, group, metrics = self.groups, self.group, self.metrics
        for row in rows:
            key = tuple(_hashable(row[g]) for g in group)
            acc = groups.get(key)
            if acc is None:
                acc = groups[key] = [tuple(row[g] for g in group)] + [[0, None, 0] for _ in metrics]
            for n, (func, pos) in enumerate(metrics, start=1):
                state = acc[n]
                value = 1 if pos is None else row[pos]
                if value is None:
                    continue
                state[2] += 1
                if func in ("sum", "avg"):
                    state[1] = value if state[1] is None else state[1] + value
                elif func == "min":
                    state[1] = value if state[1] is None or value < state[1] else state[1]
                elif func == "max":
                    state[1] = value if state[1] is None or value > state[1] else state[1]
        return []

    def finish(self) -> list[tuple]:
        out = []
        if not self.groups and not self.group:
            # SQL: an aggregate without GROUP BY over no rows gives one row.
            self.groups[()] = [()] + [[0, None, 0] for _ in self.metrics]
        for acc in self.groups.values():
            values = list(acc[0])
            for n, (func, _pos) in enumerate(self.metrics, start=1):
                _, total, count = acc[n]
                if func == "count":
                    values.append(count)
                elif func == "avg":
                    values.append(
                        None
                        if not count
                        else (
                            Decimal(total) / count
                            if not isinstance(total, float)
                            else total / count
                        )
                    )
                else:
                    values.append(total)
            out.append(tuple(values))
        self.groups = {}
        return out


def _sha256(value: Any) -> str | None:
    text = text_of(value)
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def _caster(type_: str) -> Callable[[Any], Any]:
    target = CAST_TYPES[type_]
    parse = parser_for(target)

    def cast(value: Any) -> Any:
        if value is None:
            return None
        if target == "text":
            return text_of(value)
        if target in ("integer", "bigint"):
            # Half away from zero, as PostgreSQL and MySQL round a cast.
            number = Decimal(value.strip()) if isinstance(value, str) else value
            if isinstance(number, float):
                number = Decimal(repr(number))
            if isinstance(number, Decimal):
                return int(number.quantize(Decimal(1), rounding=ROUND_HALF_UP))
            return int(number)
        if target == "numeric":
            return Decimal(str(value)) if not isinstance(value, Decimal) else value
        if target == "boolean" and not isinstance(value, str):
            return bool(value)
        if target == "json" and not isinstance(value, str):
            return value
        if target == "date" and hasattr(value, "date") and callable(value.date):
            return value.date()
        return parse(str(value)) if parse else value

    return cast


# --------------------------------------------------------- COPY text lines

_NULL = b"\\N"
_UNESCAPE = {
    b"\\\\": b"\\",
    b"\\t": b"\t",
    b"\\n": b"\n",
    b"\\r": b"\r",
    b"\\b": b"\b",
    b"\\f": b"\f",
    b"\\v": b"\v",
}
_ESCAPE_RE = re.compile(rb"\\[\\tnrbfv]")


def _unescape(field: bytes) -> bytes:
    return _ESCAPE_RE.sub(lambda m: _UNESCAPE[m.group(0)], field) if b"\\" in field else field


Row = list[bytes]


class TextLineTransformer:
    """Steps applied to PostgreSQL COPY text lines, field by field.

    For steps that only move, drop, null or hash fields (``select``,
    ``rename``, ``mask``, ``filter`` on null-ness, ``dedupe``) the text a
    COPY gives is all that is needed: a field's text is exactly ``x::text``,
    which is what ``mask`` hashes. No typed Python value is built, which is
    what makes this path several times faster than ``BatchTransformer``.
    ``build`` answers None when a step needs typed values.
    """

    def __init__(
        self, funcs: list[Callable[[Row], Row | None]], columns: list[Column], split: int = -1
    ) -> None:
        self.funcs = funcs
        self.columns = columns
        # Fields to split off each line (-1: all). Without a select, only
        # the fields up to the last one touched need splitting; the rest of
        # the line stays one piece.
        self.split = split

    @classmethod
    def build(
        cls,
        columns: list[Column],
        transformations: list[dict[str, Any]],
        offset: int = 0,
        run_params: dict[str, Any] | None = None,
    ) -> TextLineTransformer | None:
        funcs: list[Callable[[Row], Row | None]] = []
        cols = list(columns)
        touched: list[int] = []
        reorders = False
        for i, t in enumerate(transformations, start=offset):
            fn, p = t.get("function"), t.get("params") or {}
            position = {c.name: n for n, c in enumerate(cols)}
            touched.extend(position[n] for n in _names_used(t, cols))
            if fn == "select":
                reorders = True
                names = _need(cols, p.get("columns"), t, i)
                get = operator.itemgetter(*[position[n] for n in names])
                if len(names) == 1:
                    funcs.append(lambda r, get=get: [get(r)])  # type: ignore[misc]
                else:
                    funcs.append(lambda r, get=get: list(get(r)))  # type: ignore[misc]
                cols = [cols[position[n]] for n in names]
            elif fn == "rename":
                mapping = _rename_mapping(p, cols, t, i)
                cols = [c.renamed(mapping.get(c.name, c.name)) for c in cols]
            elif fn == "mask":
                names = _need(cols, p.get("columns"), t, i)
                method = p.get("method", "sha256")
                if method not in ("sha256", "redact"):
                    raise ConnectorError(f"{_where(t, i)}: method must be sha256 or redact")
                funcs.append(_text_mask([position[n] for n in names], method))
                cols = [
                    c.retyped("text") if c.name in names and method == "sha256" else c for c in cols
                ]
            elif fn == "filter":
                tests = []
                for name, op, raw in _conditions(p, cols, t, i):
                    test = _text_test(cols[position[name]], op, raw, run_params or {})
                    if test is None:
                        return None
                    tests.append((position[name], test))
                funcs.append(
                    lambda r, tests=tests: r if all(test(r[k]) for k, test in tests) else None  # type: ignore[misc]
                )
            elif fn == "dedupe":
                keys = _need(cols, p["keys"], t, i) if p.get("keys") else [c.name for c in cols]
                funcs.append(_text_dedupe([position[k] for k in keys]))
            else:
                return None
        split = -1 if reorders or not touched else max(touched) + 1
        return cls(funcs, cols, split)

    def __call__(self, lines: list[bytes]) -> list[bytes]:
        split, funcs = self.split, self.funcs
        out: list[bytes] = []
        append = out.append
        join = b"\t".join
        # The rows of a block die young: the cyclic GC would only rescan them.
        enabled = gc.isenabled()
        gc.disable()
        row: Row | None
        try:
            if len(funcs) == 1:
                func = funcs[0]
                for line in lines:
                    row = func(line.split(b"\t", split))
                    if row is not None:
                        append(join(row))
                return out
            for line in lines:
                row = line.split(b"\t", split)
                for func in funcs:
                    row = func(row)  # type: ignore[arg-type]
                    if row is None:
                        break
                else:
                    append(join(row))  # type: ignore[arg-type]
            return out
        finally:
            if enabled:
                gc.enable()


# How to read one COPY text field for a comparison, per canonical type.
_TEXT_READERS: dict[str, Callable[[bytes], Any]] = {
    "integer": int,
    "bigint": int,
    "numeric": lambda b: Decimal(b.decode()),
    "float": float,
    "boolean": lambda b: b == b"t",
    "text": lambda b: _unescape(b).decode(),
    "uuid": lambda b: b.decode(),
}


def _text_test(
    column: Column, op: str, raw: Any, run_params: dict[str, Any]
) -> Callable[[bytes], bool] | None:
    """A test of one COPY text field for a filter condition; None when it needs typed values."""
    if op == "is_null":
        return lambda v: v == _NULL
    if op == "not_null":
        return lambda v: v != _NULL
    read = _TEXT_READERS.get(column.type)
    if read is None:
        return None  # dates, timestamps, JSON: compared on typed values
    value = _coerce(_resolve(raw, run_params), column)
    if column.type == "numeric" and isinstance(value, int | float) and not isinstance(value, bool):
        value = Decimal(str(value))
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            raise ConnectorError(f"{op} needs a list")
        allowed = set(value)
        if op == "in":
            return lambda v: v != _NULL and read(v) in allowed
        return lambda v: v != _NULL and read(v) not in allowed
    if value is None:
        return lambda v: False  # SQL: a comparison with NULL is not true
    if op == "like":
        match = _like(str(value))
        return lambda v: v != _NULL and match(read(v))
    compare = _COMPARE[op]
    return lambda v: v != _NULL and compare(read(v), value)


def _names_used(t: dict[str, Any], cols: list[Column]) -> list[str]:
    """Column names a step reads (known ones only; validation comes later)."""
    p = t.get("params") or {}
    known = {c.name for c in cols}
    names: list[Any] = []
    if t.get("function") in ("mask", "select"):
        names = list(p.get("columns") or [])
    elif t.get("function") == "filter":
        names = list(p.get("columns") or []) + [c[0] for c in p.get("where") or [] if c]
    elif t.get("function") == "dedupe":
        names = list(p.get("keys") or []) or [c.name for c in cols]
    return [n for n in names if isinstance(n, str) and n in known]


def _text_mask(idx: list[int], method: str) -> Callable[[Row], Row]:
    sha = hashlib.sha256
    if method == "redact":

        def redact(r: Row) -> Row:
            for k in idx:
                r[k] = _NULL
            return r

        return redact
    if len(idx) == 1:
        k = idx[0]

        def mask_one(r: Row) -> Row:
            v = r[k]
            if v != _NULL:
                r[k] = sha(_unescape(v) if b"\\" in v else v).hexdigest().encode()
            return r

        return mask_one

    def mask(r: Row) -> Row:
        for k in idx:
            v = r[k]
            if v != _NULL:
                r[k] = sha(_unescape(v) if b"\\" in v else v).hexdigest().encode()
        return r

    return mask


def _text_dedupe(idx: list[int]) -> Callable[[Row], Row | None]:
    seen: set[tuple[bytes, ...]] = set()

    def dedupe(r: Row) -> Row | None:
        key = tuple(r[k] for k in idx)
        if key in seen:
            return None
        seen.add(key)
        return r

    return dedupe
