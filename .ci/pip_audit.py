"""Known vulnerabilities of the locked dependencies (pip-audit), for CI.

Fails on any vulnerability that has a fixed version: upgrading is then the
fix (`make lock` after raising the range in pyproject.toml). A vulnerability
with no fix yet is printed, not failed on, since nothing can be done but
wait or drop the package.

pip-audit reports a package it could not look up as "skipped", not as an
error. When the vulnerability service cannot be reached at all, every
package is skipped and a plain pip-audit run would pass having checked
nothing; this script says so loudly instead, and fails when only some are
skipped (a package missing from the index is worth a look).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LOCKS = ("requirements.lock", "requirements-dev.lock")


def audit(lock: Path) -> int:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "-r",
            str(lock),
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        print(f"pip-audit {lock}: no report\n{proc.stderr}", file=sys.stderr)
        return 1
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    fixable, unfixable = [], []
    for dep in deps:
        for vuln in dep.get("vulns", []):
            line = f"{dep['name']} {dep['version']}: {vuln['id']} (fix: {vuln.get('fix_versions')})"
            (fixable if vuln.get("fix_versions") else unfixable).append(line)
    for line in unfixable:
        print(f"pip-audit {lock}: known, no fix yet: {line}")
    for line in fixable:
        print(f"pip-audit {lock}: VULNERABLE, fix available: {line}", file=sys.stderr)
    if deps and len(skipped) == len(deps):
        print(
            f"pip-audit {lock}: WARNING: the vulnerability service answered for none of the "
            f"{len(deps)} packages ({skipped[0]['skip_reason']}); NOTHING WAS AUDITED",
            file=sys.stderr,
        )
        return 1 if fixable else 0
    for dep in skipped:
        reason = dep["skip_reason"]
        print(f"pip-audit {lock}: not audited: {dep['name']}: {reason}", file=sys.stderr)
    audited = len(deps) - len(skipped)
    print(f"pip-audit {lock}: {audited} packages audited, {len(fixable)} fixable vulnerabilities")
    return 1 if fixable or skipped else 0


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    return max(audit(root / lock) for lock in LOCKS)


if __name__ == "__main__":
    sys.exit(main())
