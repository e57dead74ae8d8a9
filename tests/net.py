"""Network helpers for tests of the outbound host policy: real listeners, a rebinding DNS.

DNS is the one piece a test cannot run for real on loopback, so
``RebindingDns`` stands for a DNS server whose answer changes between two
lookups; everything that receives (or must not receive) a connection is a
real socket.
"""

from __future__ import annotations

import datetime
import os
import secrets
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class Listener:
    """A TCP listener on a loopback address that records every connection it accepts."""

    def __init__(self, address: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.address, self.port = self.sock.getsockname()[:2]
        self.accepted: list[bytes] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(0.5)
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            self.accepted.append(data)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


class RebindingDns:
    """A DNS answer for one name that changes after the first lookup."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, answers: list[str]) -> None:
        self.name = name
        self.answers = list(answers)
        self.lookups = 0
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != name:
                return real(host, port, *args, **kwargs)
            answer = self.answers[min(self.lookups, len(self.answers) - 1)]
            self.lookups += 1
            return real(answer, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# Host forms every purpose refuses, with the words of the rule (SPEC §10):
# the ones the security audit tried.
REFUSED_HOSTS = [
    ("x.invalid,169.254.169.254", "one host only"),
    ("::ffff:169.254.169.254", "169.254.169.254 (link-local)"),
    ("[::ffff:a9fe:a9fe]", "without brackets"),
    ("/var/run/postgresql", "Unix-socket"),
    ("user@host", "'@'"),
    ("host\n", "control characters"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("169.254.169.254", "link-local"),
]


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for DNS name ``name``: ``(cert.pem, key.pem)`` in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class NetnsHosts:
    """Linux network namespaces as separate "hosts" on one bridge (root only).

    The bridge ``<prefix>br`` in this (the root) namespace holds ``10.200.N.1/24``,
    where the shared services listen; host ``i`` is namespace ``<prefix>h<i>``
    with ``10.200.N.(10+i)`` on a veth pair whose root end is ``<prefix>v<i>``.
    ``cut(i)`` takes that end down: the host loses the network as a pulled cable
    would. Only 10.200.0.0/16 is used, and only inside these interfaces;
    ``close()`` deletes all of it (call it in a finalizer).
    """

    def __init__(self, hosts: int, *, subnet: int | None = None) -> None:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise PermissionError("network namespaces need root and iproute2 (ip)")
        self.prefix = "dd" + secrets.token_hex(3)  # interface names stay under 15 characters
        self.subnet = subnet if subnet is not None else 1 + secrets.randbelow(250)
        self.gateway = f"10.200.{self.subnet}.1"
        self.namespaces: list[str] = []
        self.bridge = f"{self.prefix}br"
        try:
            self._run("link", "add", self.bridge, "type", "bridge")
            self._run("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            self._run("link", "set", self.bridge, "up")
            for index in range(hosts):
                self._add_host(index)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _run(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)

    def _add_host(self, index: int) -> None:
        namespace, outside, inside = (
            f"{self.prefix}h{index}",
            f"{self.prefix}v{index}",
            f"{self.prefix}i{index}",
        )
        self._run("netns", "add", namespace)
        self.namespaces.append(namespace)
        self._run("link", "add", outside, "type", "veth", "peer", "name", inside)
        self._run("link", "set", inside, "netns", namespace)
        self._run("link", "set", outside, "master", self.bridge, "up")
        self._run("-n", namespace, "addr", "add", f"{self.address(index)}/24", "dev", inside)
        self._run("-n", namespace, "link", "set", inside, "up")
        self._run("-n", namespace, "link", "set", "lo", "up")

    def address(self, index: int) -> str:
        return f"10.200.{self.subnet}.{10 + index}"

    def hostname(self, index: int) -> str:
        return f"{self.prefix}-host{index}"

    def command(self, index: int, argv: list[str]) -> list[str]:
        """``argv`` run inside host ``index``: its namespace and its own hostname (UTS)."""
        return [
            "ip", "netns", "exec", self.namespaces[index],
            "unshare", "--uts", "sh", "-c", f'hostname {self.hostname(index)} && exec "$@"',
            "sh", *argv,
        ]  # fmt: skip

    def cut(self, index: int) -> None:
        self._run("link", "set", f"{self.prefix}v{index}", "down")

    def close(self) -> None:
        for index, namespace in enumerate(self.namespaces):
            # The veth first: a namespace outlives its name while a socket of
            # a cut host still waits in it, and its link would stay behind.
            link = f"{self.prefix}v{index}"
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        self.namespaces = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
