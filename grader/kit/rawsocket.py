"""A socket to a broker for checks that speak the Kafka protocol themselves (requests librdkafka has no
API for, e.g. kata-03's DescribeProducers), authenticated the way the run's clients are.

    from grader.kit.rawsocket import kafka_socket
    with kafka_socket(host, port, timeout=10) as sock: ...   # then send requests as on a plain socket

On a plain run it is socket.create_connection. On a shared cluster (grade --client-config) it
does what librdkafka would: TLS for SSL / SASL_SSL (ssl.ca.location), then the SASL handshake
and SaslAuthenticate exchange for PLAIN or SCRAM-SHA-256/512 (RFC 5802).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct

from grader.clientroute import client_config

SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
CLIENT_ID = b"kafka-katas-checks"


class SaslFailed(ConnectionError):
    """The broker refused the run's credentials."""


def kafka_socket(host: str, port: int, timeout: float = 10.0) -> socket.socket:
    conf = client_config({})
    protocol = str(conf.get("security.protocol", "plaintext")).upper()
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=conf.get("ssl.ca.location"))
            if str(conf.get("enable.ssl.certificate.verification", "true")).lower() == "false":
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=host)
        if protocol.startswith("SASL"):
            mechanism = str(conf.get("sasl.mechanism") or conf.get("sasl.mechanisms") or "PLAIN").upper()
            _authenticate(sock, mechanism, str(conf.get("sasl.username", "")), str(conf.get("sasl.password", "")))
    except BaseException:
        sock.close()
        raise
    return sock


def _authenticate(sock: socket.socket, mechanism: str, user: str, password: str) -> None:
    name = mechanism.encode()
    error = _Reader(_call(sock, SASL_HANDSHAKE, 1, struct.pack(">h", len(name)) + name)).int16()
    if error:
        raise SaslFailed(f"the broker does not offer SASL mechanism {mechanism} (error {error})")
    if mechanism == "PLAIN":
        _exchange(sock, b"\0" + user.encode() + b"\0" + password.encode())
        return
    if not mechanism.startswith("SCRAM-SHA-"):
        raise SaslFailed(f"checks cannot authenticate with SASL mechanism {mechanism} (PLAIN and SCRAM only)")
    digest = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}[mechanism]
    nonce = base64.b64encode(os.urandom(18)).decode()
    safe_user = user.replace("=", "=3D").replace(",", "=2C")
    first_bare = f"n={safe_user},r={nonce}"
    server_first = _exchange(sock, f"n,,{first_bare}".encode()).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    if not fields.get("r", "").startswith(nonce):
        raise SaslFailed("the broker's SCRAM nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac(digest().name, password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    final_bare = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.new(digest(client_key).digest(), auth_message, digest).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True))).decode()
    _exchange(sock, f"{final_bare},p={proof}".encode())


def _exchange(sock: socket.socket, auth_bytes: bytes) -> bytes:
    r = _Reader(_call(sock, SASL_AUTHENTICATE, 0, struct.pack(">i", len(auth_bytes)) + auth_bytes))
    error, message = r.int16(), r.string()
    if error:
        raise SaslFailed(f"SASL authentication failed: {message or f'error {error}'}")
    return r.bytes()


def _call(sock: socket.socket, api_key: int, version: int, body: bytes) -> bytes:
    header = struct.pack(">hhih", api_key, version, 1, len(CLIENT_ID)) + CLIENT_ID
    request = header + body
    sock.sendall(struct.pack(">i", len(request)) + request)
    size = struct.unpack(">i", _recv(sock, 4))[0]
    return _recv(sock, size)[4:]  # past the correlation id


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection during SASL authentication")
        data += chunk
    return data


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int16(self) -> int:
        return struct.unpack(">h", self._take(2))[0]

    def string(self) -> str | None:
        n = self.int16()
        return None if n < 0 else self._take(n).decode("utf-8", "replace")

    def bytes(self) -> bytes:
        n = struct.unpack(">i", self._take(4))[0]
        return b"" if n < 0 else self._take(n)
