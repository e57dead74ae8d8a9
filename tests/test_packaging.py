"""What `pip install .` and the Docker image ship: every package of the product.

The image installs the project non-editable (`uv pip install .`), so a
package missing from pyproject's list, or a top-level folder the Dockerfile
does not copy, is missing from the product; an editable install (the tests')
would never notice.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def packages_in_tree(top: list[str]) -> set[str]:
    found = set()
    for name in top:
        for init in (ROOT / name).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    return found


def test_pyproject_lists_every_package_of_the_product() -> None:
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    top = sorted({name.split(".")[0] for name in listed})
    assert set(listed) == packages_in_tree(top)


def test_the_dockerfile_copies_every_top_level_package() -> None:
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert {name.split(".")[0] for name in listed} <= copied
