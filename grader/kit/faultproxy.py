"""A loopback TCP proxy between Kafka clients and a broker that checks can make misbehave.

Brokers started with `proxy` advertise the proxy's port, so every client connection
(bootstrap and after metadata) passes through it. Modes, switchable at any time:
  pass     forward both ways (the default)
  delay    hold each chunk for `delay_s` before forwarding
  drop_responses  forward requests to the broker but discard what it answers, so the
           client times out and retries requests the broker already applied: the way
           a non-idempotent producer writes duplicates for real
  cut      close every connection and refuse new ones until set back
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

BUFFER = 65536


class FaultProxy:
    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1"):
        self.listen_port = listen_port
        self.target = (host, target_port)
        self.mode = "pass"
        self.delay_s = 0.0
        self.dropped_bytes = 0
        self._server = socket.create_server((host, listen_port), reuse_port=False)
        self._server.settimeout(0.2)
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name=f"proxy-{listen_port}")
        self._thread.start()

    def set_mode(self, mode: str, delay_s: float = 0.0) -> None:
        assert mode in ("pass", "delay", "drop_responses", "cut"), mode
        self.mode, self.delay_s = mode, delay_s
        if mode == "cut":
            self._close_all()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            if self.mode == "cut":
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for src, dst, is_response in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, is_response), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, is_response: bool) -> None:
        try:
            while not self._stop.is_set():
                data = src.recv(BUFFER)
                if not data:
                    break
                if self.mode == "cut":
                    break
                if self.mode == "delay" and self.delay_s:
                    time.sleep(self.delay_s)
                if self.mode == "drop_responses" and is_response:
                    self.dropped_bytes += len(data)
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def _close_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        self._stop.set()
        self._close_all()
        with contextlib.suppress(OSError):
            self._server.close()
        self._thread.join(timeout=2)
