"""The copy matrix's peers: dlt, polars + connectorx (ADBC writer) and Sling, same pairs, same run.

Peers run in their own virtualenv (``make bench-peers`` builds ``.venv-peers``
from ``bench/peers-requirements.txt``): their pins (SQLAlchemy, pyarrow,
psycopg2) must not move the product's. Each peer copies the pair's source
table into a table of its own in the pair's destination database, in a
child process timed from start to exit (Python start-up included, as the
product's), whose peak RSS is read from ``wait4``. The caller counts the
rows the peer wrote: a peer that copied the wrong number fails the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS_PYTHON = Path(os.environ.get("PEERS_PYTHON", ROOT / ".venv-peers" / "bin" / "python"))

# One script per peer, run by the peers' Python with the job as argv[1] (JSON):
# {"source": {"kind", "url" | "path", "table"}, "destination": {"kind", "url"}, "table": target}.
POLARS = """
import json, sys
import polars as pl
job = json.loads(sys.argv[1]); src, dst = job["source"], job["destination"]
if src["kind"] == "csv":
    frame = pl.read_csv(src["path"], try_parse_dates=True)
else:
    frame = pl.read_database_uri(f"SELECT * FROM {src['table']}", src["url"], engine="connectorx")
frame.write_database(job["table"], dst["url"], engine="adbc", if_table_exists="replace")
"""

DLT = """
import json, os, sys
import dlt
from dlt.sources.sql_database import sql_table
from dlt.sources.filesystem import readers
job = json.loads(sys.argv[1]); src, dst = job["source"], job["destination"]
os.environ["DESTINATION__POSTGRES__CREDENTIALS"] = dst["url"]
if src["kind"] == "csv":
    folder, name = os.path.split(src["path"])
    data = readers(bucket_url=folder, file_glob=name).read_csv_duckdb()
elif src["kind"] == "http":
    from dlt.sources.rest_api import rest_api_source
    data = rest_api_source({
        "client": {"base_url": src["url"], "paginator": {
            "type": "page_number", "page_param": "page", "base_page": 1, "total_path": None}},
        "resources": [{"name": "rows", "endpoint": {"path": src["table"]}}],
    })
else:
    data = sql_table(credentials=src["sqlalchemy"], table=src["table"], backend="pyarrow")
pipeline = dlt.pipeline(
    pipeline_name=job["table"], destination="postgres", dataset_name=job["table"],
    pipelines_dir=job["work"],
)
pipeline.run(data, table_name="rows", write_disposition="replace")
"""

SLING_ENV_KINDS = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite"}


def sling_binary() -> Path | None:
    """The Sling binary the ``sling-linux-amd64`` wheel ships (the ``sling`` wheel downloads it)."""
    site = PEERS_PYTHON.parent.parent / "lib"
    found = sorted(site.glob("python3*/site-packages/sling_linux_amd64/bin/sling-linux-amd64"))
    return found[0] if found else None


def why_not() -> dict[str, str]:
    """Peers that cannot run here, each with the reason (empty: all can)."""
    if not PEERS_PYTHON.exists():
        reason = f"not installed ({PEERS_PYTHON} missing: run `make bench-peers`)"
        return {"dlt": reason, "polars/connectorx": reason, "Sling": reason}
    return {} if sling_binary() else {"Sling": "sling-linux-amd64 binary not found"}


def supports(peer: str, source_kind: str, destination_kind: str) -> str:
    """Empty when ``peer`` runs this pair; else why not."""
    if source_kind == "http" and peer == "polars/connectorx":
        return "no paginated REST source"
    if source_kind == "http" and peer == "Sling":
        return "its REST sources are YAML API specs, none written for this bench"
    if peer == "Sling":
        return ""
    if destination_kind != "postgresql":
        return "its PostgreSQL writer only is benchmarked here (MySQL through SQLAlchemy inserts)"
    return ""


def target(peer: str) -> str:
    return "peer_" + "".join(ch for ch in peer.lower() if ch.isalnum())


def command(peer: str, job: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if peer == "polars/connectorx":
        return [str(PEERS_PYTHON), "-c", POLARS, json.dumps(job)], env
    if peer == "dlt":
        env["RUNTIME__LOG_LEVEL"] = "WARNING"
        return [str(PEERS_PYTHON), "-c", DLT, json.dumps(job)], env
    src, dst = job["source"], job["destination"]
    env["SLING_TGT"] = dst["sling"]
    env["SLING_HOME_DIR"] = job["work"]
    binary = sling_binary()
    assert binary is not None  # nosec B101 - why_not() said it runs
    args = [str(binary), "run"]
    if src["kind"] == "csv":
        args += ["--src-stream", f"file://{src['path']}"]
    else:
        env["SLING_SRC"] = src["sling"]
        args += ["--src-conn", "SLING_SRC", "--src-stream", src["stream"]]
    args += ["--tgt-conn", "SLING_TGT", "--tgt-object", f"{dst['schema']}.{job['table']}"]
    args += ["--mode", "full-refresh"]
    return args, env


def run(peer: str, job: dict[str, Any]) -> dict[str, Any]:
    """Run one peer copy in a child; wall seconds and peak RSS (MiB) of the child."""
    args, env = command(peer, job)
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"peer {peer} failed: {out[-2000:]}")
    return {"wall_s": wall, "peak_mib": usage.ru_maxrss / 1024}


def side(spec: dict[str, Any], table: str) -> dict[str, Any]:
    """A matrix side (``{kind, config, data_root}``) as the peers' URLs."""
    kind, config = spec["kind"], spec["config"]
    if kind == "http":
        return {"kind": kind, "url": config["base_url"], "table": table}
    if kind == "csv":
        return {"kind": kind, "path": str(Path(spec["data_root"]) / config["path"] / table)}
    if kind == "sqlite":
        path = Path(spec["data_root"]) / config["path"]
        return {
            "kind": kind,
            "url": f"sqlite://{path}",
            "sqlalchemy": f"sqlite:///{path}",
            "sling": f"sqlite://{path}",
            "table": table,
            "stream": f"main.{table}",
            "schema": "main",
        }
    host = f"{config['username']}@{config['host']}:{config['port']}/{config['database']}"
    # dlt's PostgreSQL credentials insist on a password; trust authentication ignores it.
    secret = f"{config['username']}:x@{host.split('@', 1)[1]}"
    if kind == "mysql":
        return {
            "kind": kind,
            "url": f"mysql://{host}",
            "sqlalchemy": f"mysql+pymysql://{host}",
            "sling": f"mysql://{host}",
            "table": table,
            "stream": f"{config['database']}.{table}",
            "schema": config["database"],
        }
    return {
        "kind": kind,
        "url": f"postgresql://{secret}",
        "sqlalchemy": f"postgresql+psycopg2://{secret}",
        "sling": f"postgresql://{host}?sslmode=disable",
        "table": table,
        "stream": f"public.{table}",
        "schema": "public",
    }


def counted(peer: str) -> str:
    """Where ``peer`` wrote its rows in the destination database (to count and drop)."""
    return f"{target(peer)}.rows" if peer == "dlt" else target(peer)


def dropped(peer: str) -> str:
    """SQL that removes what ``peer`` wrote (PostgreSQL and MySQL alike)."""
    if peer == "dlt":
        return f"DROP SCHEMA IF EXISTS {target(peer)} CASCADE"
    return f"DROP TABLE IF EXISTS {target(peer)}"


PEERS = ("dlt", "polars/connectorx", "Sling")
