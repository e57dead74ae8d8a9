"""``manage.py worker``: a django-q2 cluster that heals itself or exits non-zero.

``qcluster`` starts the cluster and then only waits for its sentinel; with
the sentinel killed it exits 0 while the workers run on orphaned and
nothing re-spawns anything. This command runs the same cluster and watches it
(``ops.supervision.ClusterWatch``): a dead worker, monitor or pusher (which
the sentinel replaces, but which may have died holding a queue's lock and
left the cluster unable to take tasks: see ops.supervision), a dead
sentinel, a set of processes not made whole again, or a status report missing for
``--stale-after`` seconds while the broker answers make it kill what is
left of the cluster and exit 1, for its supervisor (compose's
``restart:``, systemd) to start a new one. SIGTERM/SIGINT stop the cluster
cleanly and exit 0.

``manage.py worker --check`` is the health check: 0 when a worker of this
host saw its cluster healthy within the last ``--stale-after`` seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django_q.brokers import get_broker
from django_q.cluster import Cluster
from django_q.conf import Conf

from ops import supervision


class Command(BaseCommand):
    help = "Run a worker cluster; exit non-zero when it cannot heal itself."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="health check: exit 0 when a worker of this host is healthy",
        )
        parser.add_argument(
            "--stale-after",
            type=float,
            default=30.0,
            help="seconds without the cluster's status report (broker up) before exiting;"
            " with --check, the oldest heartbeat that counts as healthy",
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=10.0,
            help="seconds a cluster process may stay missing before exiting",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["check"]:
            if not supervision.this_host_healthy(options["stale_after"]):
                self.stderr.write(f"no healthy worker on {socket.gethostname()}")
                sys.exit(1)
            self.stdout.write("ok")
            return
        supervision.become_subreaper()
        deaths = supervision.DeathReports()
        logging.getLogger("django-q").addHandler(deaths)  # before the sentinel forks
        cluster = Cluster()
        cluster.start()
        if cluster.sentinel is None or cluster.start_event is None:
            return  # stopped by a signal while starting
        watch = supervision.ClusterWatch(
            sentinel_pid=cluster.sentinel.pid,
            cluster_id=cluster.cluster_id,
            processes=Conf.WORKERS + 2,  # + monitor and pusher
            broker=get_broker(),
            deaths=deaths,
            grace=options["grace"],
            stale_after=options["stale_after"],
        )
        host, pid = socket.gethostname(), os.getpid()
        try:
            while cluster.start_event is not None:  # None once SIGTERM stopped it
                problem = watch.check()
                if problem and cluster.start_event is not None:
                    if not cluster.sentinel.is_alive():  # reaps it: its exit code is known
                        problem += f" (exit code {cluster.sentinel.exitcode})"
                    self.stderr.write(f"worker {host}:{pid}: {problem}; exiting")
                    supervision.kill_descendants()
                    supervision.withdraw(host, pid)
                    sys.exit(1)
                supervision.reap_adopted(keep=cluster.sentinel.pid)
                supervision.publish(
                    supervision.Heartbeat(
                        host=host,
                        pid=pid,
                        cluster=str(cluster.cluster_id),
                        healthy_at=watch.last_healthy,
                    )
                )
                time.sleep(1)
        finally:
            supervision.withdraw(host, pid)
