"""A cluster that looks bigger than it is: a Kafka protocol proxy in front of the one real broker.

The grader runs one broker, where a replication factor of 1 is the only one that fits, so code that
hard-codes 1 (or a broker count of 1) looks right. This proxy lets a check ask the learner's code to
create a topic on a cluster that *says* it has N brokers: it answers Metadata and DescribeCluster
with N brokers (each one a port of this proxy, all forwarding to the real broker), records every
CreateTopics request it forwards (the replication factor and topic configs the code asked for), and
lowers that replication factor to 1 on its way to the real broker, which could not hold more. The
check then compares what was asked with what the contract says fits N brokers.

Only the broker list of those two responses and one int16 of CreateTopics are rewritten; every other
byte passes through unchanged, so any call the learner's code makes works as on the real broker. Since
the clients learn the proxy's ports from Metadata, all their traffic flows through it, which allows one
network fault: `drop_produce_responses = n` cuts the connection instead of passing on the next n Produce
responses, after the broker has appended their records, so the producer must resend batches the broker
already holds (only an idempotent producer's resend is recognised and not written twice). And one
timing probe: `hold_responses = {api_key: seconds}` holds each such response that long before passing it
on, and `answered` counts the responses of each api key passed on so far, so a check can tell whether a
call returned before or after its client heard the broker's answer ("returns once the broker confirmed").

Written for kata-02 (a bigger cluster) and kata-03 (resent batches); any single-broker kata may use
it to inject a network fault.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import threading
import time

PRODUCE, METADATA, CREATE_TOPICS, CREATE_PARTITIONS, DESCRIBE_CLUSTER = 0, 3, 19, 37, 60


def _flexible(api_key: int, version: int) -> bool:
    return (api_key == METADATA and version >= 9) or (api_key == CREATE_TOPICS and version >= 5) or \
        api_key == DESCRIBE_CLUSTER


class _Buf:
    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def string(self, flexible: bool) -> str | None:
        n = self.uvarint() - 1 if flexible else self.int16()
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def array_len(self, flexible: bool) -> int:
        return self.uvarint() - 1 if flexible else self.int32()

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        if n < 0x80:
            return bytes(out + bytes([n]))
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def _string(text: str | None, flexible: bool) -> bytes:
    if text is None:
        return _uvarint(0) if flexible else struct.pack(">h", -1)
    data = text.encode()
    return (_uvarint(len(data) + 1) if flexible else struct.pack(">h", len(data))) + data


def _skip_request_header(buf: _Buf, flexible: bool) -> None:
    buf.take(8)  # api key, version, correlation id
    n = buf.int16()  # client id: a plain nullable string even in flexible headers
    buf.take(max(n, 0))
    if flexible:
        buf.skip_tags()


class BigClusterProxy:
    """`bootstrap` is this proxy's address; `created` lists (topic, replication factor, configs) asked."""

    def __init__(self, real_host: str, real_port: int, real_node_id: int, brokers: int):
        self.real = (real_host, real_port)
        self.created: list[tuple[str, int, dict]] = []
        self.drop_produce_responses = 0
        self.dropped = 0
        self.hold_responses: dict[int, float] = {}
        self.answered: dict[int, int] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._sockets: list[socket.socket] = []
        self._listeners = []
        for _ in range(brokers):
            listener = socket.create_server(("127.0.0.1", 0))
            self._listeners.append(listener)
            threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        ids = [real_node_id] + [real_node_id + 100 + i for i in range(1, brokers)]
        self.brokers = [(node, listener.getsockname()[1]) for node, listener in zip(ids, self._listeners, strict=True)]
        self.bootstrap = f"127.0.0.1:{self.brokers[0][1]}"

    # ------------------------------------------------------------------ plumbing
    def _accept(self, listener: socket.socket) -> None:
        while not self._closing:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.real, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            pending: dict[int, tuple[int, int]] = {}
            threading.Thread(target=self._pump, args=(client, upstream, pending, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, pending, False), daemon=True).start()

    @staticmethod
    def _frame(sock: socket.socket) -> bytes | None:
        head = b""
        while len(head) < 4:
            chunk = sock.recv(4 - len(head))
            if not chunk:
                return None
            head += chunk
        size = struct.unpack(">i", head)[0]
        body = bytearray()
        while len(body) < size:
            chunk = sock.recv(min(65536, size - len(body)))
            if not chunk:
                return None
            body += chunk
        return bytes(body)

    def _pump(self, src: socket.socket, dst: socket.socket, pending: dict, requests: bool) -> None:
        # Frames leave through a writer thread of their own, so a held answer is timed from its arrival while
        # the answers behind it keep arriving: answers to pipelined requests are held side by side.
        out: queue.Queue = queue.Queue()
        threading.Thread(target=self._write, args=(out, src, dst), daemon=True).start()
        try:
            while True:
                frame = self._frame(src)
                if frame is None:
                    break
                due = time.monotonic()
                api_key = None if requests else pending.get(struct.unpack(">i", frame[:4])[0], (None, None))[0]
                if not requests and self._drop(frame, pending):
                    break  # the broker has the records; the producer never hears so
                due += self.hold_responses.get(api_key, 0.0)  # the broker has answered; the client waits
                frame = self._request(frame, pending) if requests else self._response(frame, pending)
                out.put((due, api_key, frame))
        except OSError:
            pass
        finally:
            out.put(None)  # the writer sends what is queued, then closes both sides

    def _write(self, out: queue.Queue, src: socket.socket, dst: socket.socket) -> None:
        try:
            while (item := out.get()) is not None:
                due, api_key, frame = item
                time.sleep(max(0.0, due - time.monotonic()))
                dst.sendall(struct.pack(">i", len(frame)) + frame)
                if api_key is not None:
                    with self._lock:
                        self.answered[api_key] = self.answered.get(api_key, 0) + 1
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the other pump and sends the peer a FIN
                with contextlib.suppress(OSError):
                    sock.close()

    def _drop(self, frame: bytes, pending: dict) -> bool:
        api_key = pending.get(struct.unpack(">i", frame[:4])[0], (None, None))[0]
        with self._lock:
            if api_key != PRODUCE or self.dropped >= self.drop_produce_responses:
                return False
            self.dropped += 1
            return True

    # ------------------------------------------------------------------ rewriting
    def _request(self, frame: bytes, pending: dict) -> bytes:
        api_key, version, correlation = struct.unpack(">hhi", frame[:8])
        pending[correlation] = (api_key, version)
        if api_key != CREATE_TOPICS:
            return frame
        flexible = _flexible(api_key, version)
        out = bytearray(frame)
        buf = _Buf(frame)
        _skip_request_header(buf, flexible)
        for _ in range(buf.array_len(flexible)):
            name = buf.string(flexible)
            buf.int32()  # partitions
            rf_at, rf = buf.pos, buf.int16()
            for _ in range(buf.array_len(flexible)):  # manual assignments
                buf.int32()
                buf.take(4 * buf.array_len(flexible))
                if flexible:
                    buf.skip_tags()
            configs = {}
            for _ in range(buf.array_len(flexible)):
                key = buf.string(flexible)
                configs[key] = buf.string(flexible)
                if flexible:
                    buf.skip_tags()
            if flexible:
                buf.skip_tags()
            self.created.append((name, rf, configs))
            if rf > 1:  # the real broker can hold one copy only
                out[rf_at:rf_at + 2] = struct.pack(">h", 1)
        return bytes(out)

    def _brokers_bytes(self, flexible: bool, rack: bool) -> bytes:
        out = _uvarint(len(self.brokers) + 1) if flexible else struct.pack(">i", len(self.brokers))
        for node, port in self.brokers:
            out += struct.pack(">i", node) + _string("127.0.0.1", flexible) + struct.pack(">i", port)
            if rack:
                out += _string(None, flexible)
            if flexible:
                out += _uvarint(0)
        return out

    def _response(self, frame: bytes, pending: dict) -> bytes:
        correlation = struct.unpack(">i", frame[:4])[0]
        api_key, version = pending.pop(correlation, (None, None))
        if api_key not in (METADATA, DESCRIBE_CLUSTER):
            return frame
        flexible = _flexible(api_key, version)
        buf = _Buf(frame, 4)
        if flexible:
            buf.skip_tags()
        if api_key == METADATA and version >= 3 or api_key == DESCRIBE_CLUSTER:
            buf.int32()  # throttle time
        if api_key == DESCRIBE_CLUSTER:
            buf.int16()  # error code
            buf.string(True)  # error message
            if version >= 1:
                buf.take(1)  # endpoint type
            buf.string(True)  # cluster id
            buf.int32()  # controller id
        start = buf.pos
        rack = api_key == DESCRIBE_CLUSTER or version >= 1
        for _ in range(buf.array_len(flexible)):
            buf.int32()
            buf.string(flexible)
            buf.int32()
            if rack:
                buf.string(flexible)
            if flexible:
                buf.skip_tags()
        return frame[:start] + self._brokers_bytes(flexible, rack) + frame[buf.pos:]

    def close(self) -> None:
        self._closing = True
        for sock in self._listeners + self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
