"""A symmetric, re-entrant call protocol over one socket (see grader/host/wire.py for the values).

Either side may call the other while a call of its own is open: the judge calls a learner
function, the learner's code calls the judge's `process` callback, which may call the learner
again. Every request carries the context (the thread) it belongs to, so a nested request runs on
the very thread that waits for the outer reply, as it would in one process (sqlite connections
and other thread-bound objects keep working). Requests from a thread the other side started on
its own get a worker thread here that lives as long as the connection.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import queue
import socket
import threading
from collections.abc import Callable

from grader.host.proxies import RemoteCallableObject, RemoteError, RemoteFunction, RemoteObject, learner_frames
from grader.host.wire import Codec, WireError, pack, read_frame

__all__ = ["Connection", "ConnectionClosed", "Handles", "RemoteError", "learner_frames"]

_CLOSED = object()
_SPECIALS = {"repr": repr, "str": str, "len": len, "bool": bool, "iter": iter, "next": next,
             "getitem": lambda o, k: o[k], "setitem": lambda o, k, v: o.__setitem__(k, v),
             "contains": lambda o, k: k in o, "enter": lambda o: o.__enter__(),
             "exit": lambda o, *a: o.__exit__(*a), "eq": lambda o, x: o == x, "hash": hash,
             "dir": lambda o: [n for n in dir(o) if not n.startswith("__")]}


class ConnectionClosed(Exception):
    """The other side is gone (its process ended or closed the connection)."""


class Handles:
    """Objects of this side the other side holds by number; one number per object."""

    def __init__(self):
        self._by_id: dict[int, object] = {}
        self._ids: dict[int, int] = {}
        self._next = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, obj) -> int:
        with self._lock:
            key = id(obj)
            handle = self._ids.get(key)
            if handle is None or self._by_id.get(handle) is not obj:
                handle = next(self._next)
                self._ids[key] = handle
                self._by_id[handle] = obj
            return handle

    def get(self, handle: int):
        try:
            return self._by_id[handle]
        except KeyError:
            raise WireError(f"no object number {handle} on this side") from None


class Connection:
    def __init__(self, sock: socket.socket, side: str, ops: dict[str, Callable] | None = None,
                 frames: Callable[[BaseException], list] | None = None, on_output: Callable[[str], None] | None = None,
                 allow_base_exceptions: bool = False, died: Callable[[], BaseException] | None = None):
        self.sock = sock
        self.side = side
        self.ops = ops or {}
        self.frames = frames or (lambda exc: [])
        self.on_output = on_output
        self.allow_base_exceptions = allow_base_exceptions
        self.died = died or (lambda: ConnectionClosed("the other side closed the connection"))
        self.handles = Handles()
        self.codec = Codec(self.handles, self._make_proxy, self._proxy_ref)
        self.closed = threading.Event()
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._queues: dict[str, queue.Queue] = {}
        self._queues_lock = threading.Lock()
        self._tls = threading.local()
        self._exc_classes: dict[int, type] = {}
        self._exc_class_refs: dict[type, int] = {}
        self.before_request: Callable[[], None] | None = None
        # Called once, on the reader thread, when the other side is gone (EOF), whether or not a request
        # was waiting: a process that dies just after its last reply is noticed too.
        self.on_closed: Callable[[], None] | None = None
        self._reader = threading.Thread(target=self._read_loop, daemon=True, name=f"rpc-reader-{side}")
        self._reader.start()

    # ---- sending ---------------------------------------------------------------------
    def _send(self, message: dict) -> None:
        data = pack(message)
        with self._send_lock:
            if self.closed.is_set():
                raise self.died()
            try:
                self.sock.sendall(data)
            except OSError:
                self._close()
                raise self.died() from None

    def notify_output(self, text: str) -> None:
        self._send({"kind": "out", "text": text})

    def _ctx(self) -> str:
        ctx = getattr(self._tls, "ctx", None)
        return ctx or f"{self.side}:{threading.get_ident()}"

    def _queue(self, ctx: str) -> queue.Queue:
        with self._queues_lock:
            q = self._queues.get(ctx)
            if q is None:
                q = self._queues[ctx] = queue.Queue()
                if not ctx.startswith(self.side + ":"):  # a thread of the other side: serve it on a worker
                    threading.Thread(target=self._worker, args=(ctx, q), daemon=True,
                                     name=f"rpc-worker-{ctx}").start()
            return q

    def request(self, op: str, **fields):
        """Send a request and wait for its reply, serving nested requests of this context meanwhile."""
        if self.before_request is not None:
            self.before_request()
        ctx = self._ctx()
        q = self._queue(ctx)
        msg_id = next(self._ids)
        self._send({"kind": "req", "id": msg_id, "ctx": ctx, "op": op, **fields})
        while True:
            message = q.get()
            if message is _CLOSED:
                q.put(_CLOSED)
                raise self.died()
            if message["kind"] == "rep" and message.get("re") == msg_id:
                if "err" in message:
                    raise self._make_proxy("exc", message["err"])
                return self.codec.decode(message.get("ok"))
            if message["kind"] == "req":
                self._serve(message)

    def notify_call(self, target, *args) -> None:
        """Call without waiting for (or getting) a reply: for callbacks whose result nobody needs, so the
        caller's thread never waits for the other process to be scheduled (librdkafka's stats_cb)."""
        self._send({"kind": "req", "id": None, "noreply": True, "ctx": f"{self.side}:notify", "op": "call",
                    "ref": self._ref_of(target), "args": self.codec.encode(list(args)), "kwargs": {}})

    def call(self, target, *args, **kwargs):
        return self.request("call", ref=self._ref_of(target), args=self.codec.encode(list(args)),
                            kwargs=self.codec.encode(kwargs))

    def _ref_of(self, target) -> int:
        ref = self._proxy_ref(target)
        if ref is None:
            raise TypeError(f"{target!r} is not an object of the other side")
        return ref

    # ---- receiving -------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            while True:
                message = read_frame(self.sock)
                if message is None:
                    break
                kind = message.get("kind")
                if kind == "out":
                    if self.on_output:
                        self.on_output(str(message.get("text", "")))
                    continue
                if kind not in ("req", "rep") or not isinstance(message.get("ctx"), str):
                    raise WireError(f"a message of unknown kind {kind!r}")
                self._queue(message["ctx"]).put(message)
        except (OSError, ValueError, WireError):
            pass
        finally:
            self._close()

    def _close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        with self._queues_lock:
            queues = list(self._queues.values())
        for q in queues:
            q.put(_CLOSED)
        if self.on_closed is not None:
            with contextlib.suppress(Exception):
                self.on_closed()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._close()

    def _worker(self, ctx: str, q: queue.Queue) -> None:
        self._tls.ctx = ctx
        while True:
            message = q.get()
            if message is _CLOSED:
                return
            if message["kind"] == "req":
                self._serve(message)

    def _serve(self, message: dict) -> None:
        if message.get("noreply"):
            with contextlib.suppress(BaseException):
                self._execute(message)
            return
        reply = {"kind": "rep", "re": message.get("id"), "ctx": message["ctx"]}
        try:
            result = self._execute(message)
            reply["ok"] = self.codec.encode(result)
        except BaseException as exc:  # noqa: BLE001 - everything the code raised crosses back as data
            if isinstance(exc, ConnectionClosed) and self.closed.is_set():
                return
            try:
                reply["err"] = self.codec.exception(exc, self.frames(exc))
            except Exception:  # an exception whose args cannot even be encoded
                reply["err"] = {"type": type(exc).__name__, "module": "builtins", "message": "?", "args": []}
        try:
            self._send(reply)
        except ConnectionClosed:
            pass
        except WireError as exc:  # a result too large to send
            self._send({**{k: v for k, v in reply.items() if k != "ok"},
                        "err": {"type": "ValueError", "module": "builtins", "message": str(exc),
                                "args": [str(exc)], "base": "ValueError"}})

    def _execute(self, message: dict):
        op = message.get("op")
        decode = self.codec.decode
        if op == "call":
            target = self.handles.get(int(message["ref"]))
            return target(*decode(message.get("args") or []), **decode(message.get("kwargs") or {}))
        if op == "getattr":
            return getattr(self.handles.get(int(message["ref"])), str(message["name"]))
        if op == "setattr":
            return setattr(self.handles.get(int(message["ref"])), str(message["name"]), decode(message["value"]))
        if op == "special":
            name = str(message["name"])
            if name not in _SPECIALS:
                raise WireError(f"unknown special {name}")
            return _SPECIALS[name](self.handles.get(int(message["ref"])), *decode(message.get("args") or []))
        if op in self.ops:
            return self.ops[op](**decode(message.get("args") or {}))
        raise WireError(f"unknown operation {op!r}")

    # ---- proxies for the other side's objects ----------------------------------------
    def _proxy_ref(self, obj) -> int | None:
        if isinstance(obj, (RemoteFunction, RemoteObject)) and object.__getattribute__(obj, "_conn") is self:
            return object.__getattribute__(obj, "_ref")
        if isinstance(obj, type):
            return self._exc_class_refs.get(obj)
        return None

    def _make_proxy(self, kind: str, data: dict):
        if kind == "fn":
            return RemoteFunction(self, int(data["$fn"]), str(data.get("name", "function")))
        if kind == "obj":
            cls = RemoteCallableObject if data.get("callable") else RemoteObject
            return cls(self, int(data["$obj"]), str(data.get("type", "object")))
        if kind == "cls":
            if data.get("exc"):
                return self._exc_class(int(data["$cls"]), str(data.get("name")), data.get("base"))
            return RemoteCallableObject(self, int(data["$cls"]), "type")
        if kind == "exc":
            return self._exception(data)
        raise WireError(kind)

    def _base(self, name) -> type:
        base = getattr(builtins, str(name), None) if name else None
        if not (isinstance(base, type) and issubclass(base, BaseException)):
            return Exception
        if not issubclass(base, Exception) and not self.allow_base_exceptions:
            return Exception  # never a real SystemExit or KeyboardInterrupt from the other side
        return base

    def _exc_class(self, ref: int, name: str, base_name) -> type:
        cls = self._exc_classes.get(ref)
        if cls is None:
            base = self._base(base_name)
            bases = (RemoteError, base) if issubclass(base, Exception) else (base,)
            cls = type(name, bases, {"__module__": "learner" if self.side == "J" else "judge"})
            self._exc_classes[ref] = cls
            self._exc_class_refs[cls] = ref
        return cls

    def _exception(self, data: dict) -> BaseException:
        token = data.get("token")
        if isinstance(token, int):
            try:
                original = self.handles.get(token)
                if isinstance(original, BaseException):
                    return original  # our own exception, back from its trip through the other side
            except WireError:
                pass
        name, module = str(data.get("type", "Exception")), str(data.get("module", ""))
        try:
            args = self.codec.decode(data.get("args") or [])
        except Exception:
            args = [data.get("message", "")]
        cls = None
        if module == "builtins":
            candidate = getattr(builtins, name, None)
            if isinstance(candidate, type) and issubclass(candidate, BaseException) and (
                    issubclass(candidate, Exception) or self.allow_base_exceptions):
                cls = candidate
        elif module.startswith("confluent_kafka") or module == "cimpl":
            import confluent_kafka
            candidate = getattr(confluent_kafka, name, None)
            if isinstance(candidate, type) and issubclass(candidate, Exception):
                cls = candidate
        if cls is None:
            ref = data.get("cls")
            cls = self._exc_class(int(ref), name, data.get("base")) if isinstance(ref, int) else \
                type(name, (RemoteError, self._base(data.get("base"))), {"__module__": module or "learner"})
        try:
            exc = cls(*args)
        except Exception:
            exc = cls(str(data.get("message", "")))
        for attr, value in (("_kk_token", data.get("own")), ("learner_frames", data.get("frames") or []),
                            ("remote_type", name)):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, attr, value)
        return exc
