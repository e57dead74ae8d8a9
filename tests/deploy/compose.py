"""docker-compose.yml read as ``docker compose`` reads it, for tests without a Docker engine.

What compose does to a service before it starts a container, done here:
the project ``.env`` file gives the variables, ``${VAR}``, ``${VAR:-default}``,
``${VAR-default}``, ``${VAR:?message}``, ``${VAR?message}``, ``$VAR`` and ``$$``
are interpolated in every string of the file, YAML anchors and ``<<`` merge
keys are resolved (PyYAML does that), and a service's environment is its
``env_file`` entries overridden by its ``environment`` (a mapping or a list
of ``NAME=value``; a bare ``NAME`` takes the variable's value).

Paths: a container path is mapped to the checkout through the service's bind
mounts (``./x:/app/x``) first, then through the image's ``WORKDIR`` (the
Dockerfile copies the checkout there); a path that maps to nothing that
exists is a ``ComposeError``, so a command naming a moved file fails here
the way its container would.

No Python library does this (docker-compose v1 is gone; compose-go is Go),
so it is this small module, with its own tests (``test_compose_reader.py``).
"""

from __future__ import annotations

import ast
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from django.core.management import get_commands

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)
_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)")


class ComposeError(Exception):
    """The compose file, its .env or a mapped path is not what compose would accept."""


def _closing_brace(value: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` whose body starts at ``start`` (nesting counted)."""
    depth = 1
    for index in range(start, len(value)):
        if value.startswith("${", index):
            depth += 1
        elif value[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise ComposeError(f"invalid interpolation format in {value!r}: unclosed '${{'")


def _braced(body: str, value: str, variables: Mapping[str, str]) -> str:
    parts = _BRACED.fullmatch(body)
    if parts is None:
        raise ComposeError(f"invalid interpolation format in {value!r}: ${{{body}}}")
    name, op, arg = parts.group("name"), parts.group("op"), parts.group("arg") or ""
    current = variables.get(name)
    # With ':' an empty value counts as unset; without it only unset does.
    usable = bool(current) if op and op.startswith(":") else current is not None
    if op in (":-", "-"):
        return current if usable and current is not None else interpolate(arg, variables)
    if op in (":?", "?"):
        if not usable or current is None:
            raise ComposeError(f"required variable {name} is missing a value: {arg}")
        return current
    if op in (":+", "+"):
        return interpolate(arg, variables) if usable else ""
    return current or ""


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """``value`` with compose's ``$`` substitutions made from ``variables``."""
    out: list[str] = []
    index = 0
    while (dollar := value.find("$", index)) >= 0:
        out.append(value[index:dollar])
        rest = value[dollar + 1 :]
        if rest.startswith("$"):
            out.append("$")
            index = dollar + 2
        elif rest.startswith("{"):
            close = _closing_brace(value, dollar + 2)
            out.append(_braced(value[dollar + 2 : close], value, variables))
            index = close + 1
        elif match := _NAME.match(rest):
            out.append(variables.get(match.group(), ""))
            index = dollar + 1 + match.end()
        else:
            raise ComposeError(f"invalid interpolation format in {value!r}: a lone '$'")
    out.append(value[index:])
    return "".join(out)


def parse_env_file(text: str) -> dict[str, str]:
    """``NAME=value`` lines as compose reads an env file (comments, quotes, ``export``)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(line)
        if match is None:
            raise ComposeError(f"env file line {number}: expected NAME=value, got {raw!r}")
        name, value = match.group(1), match.group(2)
        if value[:1] in {'"', "'"}:
            # Single quotes are literal; double quotes take \" and \n escapes.
            quoted = re.match(r"'([^']*)'" if value[0] == "'" else r'"((?:[^"\\]|\\.)*)"', value)
            if quoted is None:
                raise ComposeError(f"env file line {number}: unterminated quote")
            value = quoted.group(1)
            if raw.strip().split("=", 1)[1].lstrip().startswith('"'):
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            # An unquoted value ends at " #" (an inline comment).
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        values[name] = value
    return values


def _interpolate_tree(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_tree(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(item, variables) for key, item in node.items()}
    return node


def _as_string(value: Any) -> str:
    """A YAML scalar as compose passes it to a container (true -> "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


@dataclass
class Image:
    """What the Dockerfile's final stage sets: WORKDIR and ENV."""

    workdir: PurePosixPath
    env: dict[str, str] = field(default_factory=dict)


def read_dockerfile(path: Path) -> Image:
    """WORKDIR and ``ENV NAME=value ...`` of the last stage of a Dockerfile."""
    image = Image(PurePosixPath("/"))
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "FROM":
            image = Image(PurePosixPath("/"))
        elif instruction == "WORKDIR":
            image.workdir = image.workdir / words[1]
        elif instruction == "ENV":
            for word in words[1:]:
                name, sep, value = word.partition("=")
                if not sep:
                    raise ComposeError(f"Dockerfile: ENV {word!r} is not NAME=value")
                image.env[name] = value
    return image


@dataclass
class Service:
    name: str
    config: dict[str, Any]
    project_dir: Path
    variables: Mapping[str, str]
    # The project's .env: the file this Compose was given (a checkout's own
    # .env, if any, is a developer's, not the test's).
    dotenv: Path

    @property
    def command(self) -> list[str]:
        command = self.config.get("command")
        if not isinstance(command, list) or not all(isinstance(w, str) for w in command):
            raise ComposeError(f"service {self.name}: command must be a list of strings")
        return command

    def environment(self) -> dict[str, str]:
        """The variables the container gets: env_file entries, then ``environment``."""
        env: dict[str, str] = {}
        env_files = self.config.get("env_file") or []
        for entry in [env_files] if isinstance(env_files, str | dict) else env_files:
            name = entry["path"] if isinstance(entry, dict) else entry
            path = self.project_dir / name
            if path == self.project_dir / ".env":
                path = self.dotenv
            if not path.exists():
                if isinstance(entry, dict) and entry.get("required") is False:
                    continue
                raise ComposeError(f"service {self.name}: env_file {name} not found")
            env.update(parse_env_file(path.read_text()))
        environment = self.config.get("environment") or {}
        if isinstance(environment, list):
            pairs = [item.partition("=") for item in environment]
            environment = {k: (v if sep else None) for k, sep, v in pairs}
        for key, value in environment.items():
            if value is None:  # "NAME" alone: the variable's value, if any
                if key in self.variables:
                    env[key] = self.variables[key]
                continue
            env[key] = _as_string(value)
        return env

    def mounts(self) -> list[tuple[Path | str, PurePosixPath]]:
        """``(source, container path)`` of each volume: a Path for a bind mount, else its name."""
        result: list[tuple[Path | str, PurePosixPath]] = []
        for volume in self.config.get("volumes") or []:
            if isinstance(volume, dict):
                source, target = volume.get("source", ""), volume["target"]
            else:
                source, _, rest = volume.partition(":")
                target = rest.split(":")[0]
            if source.startswith((".", "/")):
                result.append(((self.project_dir / source).resolve(), PurePosixPath(target)))
            else:
                result.append((source, PurePosixPath(target)))
        return result


class Compose:
    """A compose project: ``docker-compose.yml`` with its ``.env``."""

    def __init__(self, compose_file: Path, env_file: Path, *, dockerfile: Path | None = None):
        self.compose_file = compose_file
        self.dotenv = env_file
        self.project_dir = compose_file.parent
        self.variables = parse_env_file(env_file.read_text()) if env_file.exists() else {}
        raw = yaml.safe_load(compose_file.read_text())
        if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict):
            raise ComposeError(f"{compose_file.name}: no services")
        self.config = _interpolate_tree(raw, self.variables)
        dockerfile = dockerfile or self.project_dir / "Dockerfile"
        self.image = read_dockerfile(dockerfile) if dockerfile.exists() else None

    def service(self, name: str) -> Service:
        services = self.config["services"]
        if name not in services:
            raise ComposeError(f"no service {name!r} (have: {', '.join(services)})")
        return Service(name, services[name], self.project_dir, self.variables, self.dotenv)

    def built_services(self) -> list[str]:
        """Services made from this project's image (``build:``), not a published one."""
        return [name for name, cfg in self.config["services"].items() if "build" in cfg]

    def host_path(
        self, service: Service, container_path: str, volumes: Mapping[str, Path] | None = None
    ) -> Path:
        """Where ``container_path`` of ``service`` is on this machine.

        Bind mounts first, then named volumes (``volumes`` maps a volume name
        to a directory the caller made), then the image's WORKDIR, which holds
        the checkout. ComposeError when the result does not exist.
        """
        target = PurePosixPath(container_path)
        candidates: list[tuple[PurePosixPath, Path]] = []
        for source, mount in service.mounts():
            if isinstance(source, Path):
                candidates.append((mount, source))
            elif volumes is not None and source in volumes:
                candidates.append((mount, volumes[source]))
        if self.image is not None and "build" in service.config:
            candidates.append((self.image.workdir, self.project_dir))
        # The longest mount point that contains the path wins, as in a container.
        for mount, source in sorted(candidates, key=lambda c: len(c[0].parts), reverse=True):
            if target == mount or mount in target.parents:
                path = source / target.relative_to(mount)
                if not path.exists():
                    raise ComposeError(
                        f"service {service.name}: {container_path} maps to {path}, which does "
                        "not exist"
                    )
                return path
        raise ComposeError(f"service {service.name}: {container_path} is in no mount or WORKDIR")

    def host_command(
        self,
        service: Service,
        volumes: Mapping[str, Path] | None = None,
        command: list[str] | None = None,
    ) -> list[str]:
        """The service's command (or ``command`` run in its container, as ``docker compose
        exec``) to run here: ``python``/``gunicorn`` of this interpreter, container paths
        mapped to the checkout."""
        executable, *args = command or service.command
        bin_dir = Path(sys.executable).parent
        programs = {"python": Path(sys.executable), "gunicorn": bin_dir / "gunicorn"}
        if executable not in programs:
            found = shutil.which(executable)
            if found is None:
                raise ComposeError(f"service {service.name}: no program {executable!r} here")
            programs[executable] = Path(found)
        mapped = [
            str(self.host_path(service, arg, volumes)) if arg.startswith("/") else arg
            for arg in args
        ]
        if mapped[:1] == ["manage.py"]:
            # Relative to WORKDIR, like the container's working directory.
            mapped[0] = str(self.project_dir / "manage.py")
            if len(mapped) < 2 or mapped[1] not in get_commands():
                raise ComposeError(
                    f"service {service.name}: manage.py has no command {mapped[1:2]}"
                )
        return [str(programs[executable]), *mapped]


_VARIABLE_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def names_read_by(paths: Iterable[Path]) -> set[str]:
    """Upper-case string constants of the Python files under ``paths``.

    Every variable the product reads is named by such a constant
    (``env_str("SECRET_KEY")``, ``os.environ.get("WEB_BIND")``, a tuple of
    names); a variable compose sets that appears in none is read by nobody.
    """
    names: set[str] = set()
    for root in paths:
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if _VARIABLE_NAME.fullmatch(node.value):
                        names.add(node.value)
    return names


def unread_variables(env: Mapping[str, str], read: set[str], compose: Compose) -> list[str]:
    """Variables of a service's environment that neither the code nor compose itself uses.

    Compose uses a variable it interpolates (``${POSTGRES_PASSWORD}``: the
    .env file is both the project's variables and the app's env_file).
    """
    text = compose.compose_file.read_text()
    interpolated = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    return sorted(name for name in env if name not in read and name not in interpolated)
