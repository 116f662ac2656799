"""What crosses between the judge and the learner host: length-prefixed JSON frames, and the
tagged JSON values that stand for what plain JSON cannot say (bytes, tuples, messages, errors,
callables and objects that stay on their side and cross as handles).

Decoding only ever builds plain data, a few well-known value types (datetime, TopicPartition)
and proxies: nothing from the other side is executed or unpickled.
"""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import json
import struct
from pathlib import PurePath

MAX_FRAME = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")


class WireError(Exception):
    """The other side sent something that is not a frame of this protocol."""


def pack(message: dict) -> bytes:
    data = json.dumps(message, separators=(",", ":"), allow_nan=True).encode("utf-8")
    if len(data) > MAX_FRAME:
        raise WireError(f"a message of {len(data)} bytes is larger than the {MAX_FRAME}-byte limit")
    return _HEADER.pack(len(data)) + data


def read_frame(sock) -> dict | None:
    """One message, or None when the other side has closed the connection."""
    header = _read_exact(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise WireError(f"a frame announces {size} bytes")
    body = _read_exact(sock, size)
    if body is None:
        return None
    message = json.loads(body.decode("utf-8"))
    if not isinstance(message, dict):
        raise WireError("a frame that is not a JSON object")
    return message


def _read_exact(sock, size: int) -> bytes | None:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(size - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------- records that cross


class MessageRecord:
    """A Kafka message as plain data, with confluent_kafka.Message's accessor methods."""

    __slots__ = ("_d",)

    def __init__(self, data: dict):
        self._d = data

    def topic(self): return self._d.get("topic")  # noqa: E704
    def partition(self): return self._d.get("partition")  # noqa: E704
    def offset(self): return self._d.get("offset")  # noqa: E704
    def key(self): return self._d.get("key")  # noqa: E704
    def value(self): return self._d.get("value")  # noqa: E704
    def headers(self): return self._d.get("headers")  # noqa: E704
    def timestamp(self): return tuple(self._d.get("timestamp") or (0, -1))  # noqa: E704
    def latency(self): return self._d.get("latency")  # noqa: E704
    def leader_epoch(self): return self._d.get("leader_epoch")  # noqa: E704
    def error(self): return self._d.get("error")  # noqa: E704
    def __len__(self): return len(self._d.get("value") or b"")  # noqa: E704

    def __repr__(self) -> str:
        return (f"Message(topic={self.topic()!r}, partition={self.partition()}, offset={self.offset()}, "
                f"key={self.key()!r})")


class KafkaErrorRecord:
    """A confluent_kafka.KafkaError as plain data, with its accessor methods."""

    __slots__ = ("_d",)

    def __init__(self, data: dict):
        self._d = data

    def code(self): return self._d.get("code")  # noqa: E704
    def name(self): return self._d.get("name")  # noqa: E704
    def str(self): return self._d.get("str")  # noqa: E704
    def retriable(self): return bool(self._d.get("retriable"))  # noqa: E704
    def fatal(self): return bool(self._d.get("fatal"))  # noqa: E704
    def txn_requires_abort(self): return bool(self._d.get("txn_requires_abort"))  # noqa: E704
    def __str__(self): return self._d.get("str") or self._d.get("name") or ""  # noqa: E704
    def __repr__(self): return f"KafkaError{{code={self.name()},val={self.code()},str=\"{self.str()}\"}}"  # noqa: E704

    def __eq__(self, other):
        if isinstance(other, int):
            return self.code() == other
        return isinstance(other, KafkaErrorRecord) and other._d == self._d

    __hash__ = None


def _is_message(obj) -> bool:
    try:
        from confluent_kafka import Message
    except ImportError:  # pragma: no cover
        return isinstance(obj, MessageRecord)
    return isinstance(obj, (Message, MessageRecord))


def _is_kafka_error(obj) -> bool:
    try:
        from confluent_kafka import KafkaError
    except ImportError:  # pragma: no cover
        return isinstance(obj, KafkaErrorRecord)
    return isinstance(obj, (KafkaError, KafkaErrorRecord))


def _topic_partition_type():
    try:
        from confluent_kafka import TopicPartition
    except ImportError:  # pragma: no cover
        return None
    return TopicPartition


# ---------------------------------------------------------------------- the codec


class Codec:
    """Encodes values for the other side; objects that cannot cross become handles.

    `handles` is this side's registry (objects the other side refers to by number);
    `make_proxy(kind, data)` builds this side's stand-in for an object of the other side.
    """

    def __init__(self, handles, make_proxy, is_own_proxy):
        self.handles = handles
        self.make_proxy = make_proxy
        self.is_own_proxy = is_own_proxy  # obj -> its remote handle id, or None

    def encode(self, obj, depth: int = 0):
        kind = type(obj)  # fast paths for the exact plain types (most of what crosses)
        if kind is str or kind is bool or kind is float or obj is None:
            return obj
        if kind is int:
            return obj if -(1 << 63) < obj < 1 << 63 else {"$int": str(obj)}
        if kind is bytes:
            return {"$b": base64.b64encode(obj).decode("ascii")}
        if depth > 60:
            raise WireError("a value nested more than 60 levels deep")
        if kind is list:
            return [self.encode(v, depth + 1) for v in obj]
        if kind is tuple:
            return {"$t": [self.encode(v, depth + 1) for v in obj]}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) >= 1 << 63:
                return {"$int": str(obj)}
            return obj
        remote = self.is_own_proxy(obj)
        if remote is not None:
            return {"$ref": remote}
        d = depth + 1
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return {"$b": base64.b64encode(bytes(obj)).decode("ascii")}
        if isinstance(obj, list):
            return [self.encode(v, d) for v in obj]
        if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
            return {"$t": [self.encode(v, d) for v in obj]}
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in obj):
                return {k: self.encode(v, d) for k, v in obj.items()}
            return {"$d": [[self.encode(k, d), self.encode(v, d)] for k, v in obj.items()]}
        if isinstance(obj, (set, frozenset)):
            return {"$set": [self.encode(v, d) for v in obj]}
        if isinstance(obj, dt.datetime):
            return {"$dt": obj.isoformat()}
        if isinstance(obj, dt.date):
            return {"$date": obj.isoformat()}
        if isinstance(obj, dt.timedelta):
            return {"$td": obj.total_seconds()}
        if isinstance(obj, PurePath):
            return {"$path": str(obj)}
        if _is_message(obj):
            return {"$msg": self._message(obj, d)}
        if _is_kafka_error(obj):
            return {"$kerr": self._kafka_error(obj)}
        tp_type = _topic_partition_type()
        if tp_type is not None and isinstance(obj, tp_type):
            return {"$tp": [obj.topic, obj.partition, obj.offset]}
        if isinstance(obj, BaseException):
            return {"$exc": self.exception(obj)}
        if isinstance(obj, type):
            return {"$cls": self.handles.add(obj), "name": obj.__name__,
                    "exc": issubclass(obj, BaseException), "base": builtin_base(obj)}
        if callable(obj) and not hasattr(obj, "__dict__") or _plain_function(obj):
            return {"$fn": self.handles.add(obj), "name": getattr(obj, "__name__", "function")}
        return {"$obj": self.handles.add(obj), "type": type(obj).__name__, "callable": callable(obj)}

    def _message(self, msg, d) -> dict:
        err = msg.error()
        ts = msg.timestamp()
        return {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                "key": self.encode(msg.key(), d), "value": self.encode(msg.value(), d),
                "headers": self.encode(msg.headers(), d), "timestamp": list(ts) if ts else None,
                "error": None if err is None else {"$kerr": self._kafka_error(err)}}

    @staticmethod
    def _kafka_error(err) -> dict:
        def safe(name):
            try:
                return getattr(err, name)()
            except Exception:
                return None
        return {"code": safe("code"), "name": safe("name"), "str": safe("str"), "retriable": safe("retriable"),
                "fatal": safe("fatal"), "txn_requires_abort": safe("txn_requires_abort")}

    def exception(self, exc: BaseException, frames: list | None = None) -> dict:
        cls = type(exc)
        try:
            args = self.encode(list(exc.args))
        except Exception:
            args = [str(exc)]
        data = {"type": cls.__name__, "module": cls.__module__, "message": _safe_str(exc), "args": args,
                "base": builtin_base(cls), "frames": frames or []}
        token = getattr(exc, "_kk_token", None)
        if isinstance(token, int):
            data["token"] = token  # an exception of the other side, passing back through
        elif cls.__module__ not in ("builtins", "cimpl") and not cls.__module__.startswith("confluent_kafka"):
            data["cls"] = self.handles.add(cls)
            data["own"] = self.handles.add(exc)
        else:
            data["own"] = self.handles.add(exc)
        return data

    def decode(self, obj):
        if isinstance(obj, list):
            return [self.decode(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        if len(obj) >= 1:
            tag = next(iter(obj))
            if tag.startswith("$"):
                return self._tagged(tag, obj)
        return {k: self.decode(v) for k, v in obj.items()}

    def _tagged(self, tag: str, obj: dict):
        v = obj[tag]
        if tag == "$b":
            return base64.b64decode(v)
        if tag == "$t":
            return tuple(self.decode(x) for x in v)
        if tag == "$d":
            return {_hashable(self.decode(k)): self.decode(x) for k, x in v}
        if tag == "$set":
            return {_hashable(self.decode(x)) for x in v}
        if tag == "$int":
            return int(v)
        if tag == "$dt":
            return dt.datetime.fromisoformat(v)
        if tag == "$date":
            return dt.date.fromisoformat(v)
        if tag == "$td":
            return dt.timedelta(seconds=float(v))
        if tag == "$path":
            from pathlib import Path
            return Path(v)
        if tag == "$msg":
            data = dict(v)
            for k in ("key", "value", "headers"):
                data[k] = self.decode(data.get(k))
            if data.get("error") is not None:
                data["error"] = self.decode(data["error"])
            return _message(data)
        if tag == "$kerr":
            return _kafka_error(dict(v))
        if tag == "$tp":
            tp_type = _topic_partition_type()
            topic, partition, offset = v
            return tp_type(str(topic), int(partition), int(offset)) if tp_type else tuple(v)
        if tag == "$ref":
            return self.handles.get(int(v))
        if tag == "$exc":
            return self.make_proxy("exc", v)
        if tag in ("$fn", "$obj", "$cls"):
            return self.make_proxy(tag[1:], obj)
        raise WireError(f"unknown tag {tag}")


def _message(data: dict):
    """A real confluent_kafka.Message built from plain values (isinstance checks keep working)."""
    try:
        from confluent_kafka import Message
        ts = data.get("timestamp")
        return Message(topic=data.get("topic"), partition=data.get("partition"), offset=data.get("offset"),
                       key=data.get("key"), value=data.get("value"), headers=data.get("headers"),
                       error=data.get("error"), timestamp=tuple(ts) if ts else None)
    except Exception:
        return MessageRecord(data)


def _kafka_error(data: dict):
    try:
        from confluent_kafka import KafkaError
        return KafkaError(int(data.get("code")), data.get("str") or None, fatal=bool(data.get("fatal")),
                          retriable=bool(data.get("retriable")),
                          txn_requires_abort=bool(data.get("txn_requires_abort")))
    except Exception:
        return KafkaErrorRecord(data)


def builtin_base(cls: type) -> str | None:
    """The first builtin exception class in cls's MRO (Exception at least), for exception classes."""
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return None
    for base in cls.__mro__:
        if base.__module__ == "builtins" and getattr(builtins, base.__name__, None) is base:
            return base.__name__
    return "Exception"


def _plain_function(obj) -> bool:
    import types
    return isinstance(obj, (types.FunctionType, types.MethodType, types.BuiltinFunctionType,
                            types.BuiltinMethodType)) or type(obj).__name__ == "partial"


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose str() failed>"
