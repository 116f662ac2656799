"""Stand-ins for objects of the other side of a grader/host/rpc.py connection: every attribute
read, call and special method (len, iter, with…) is a request to the side that owns the object."""

from __future__ import annotations

import traceback


class RemoteError(Exception):
    """Base of exception classes that stand for a class of the other side."""

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class RemoteFunction:
    __slots__ = ("_conn", "_ref", "__name__")

    def __init__(self, conn, ref: int, name: str):
        self._conn, self._ref, self.__name__ = conn, ref, name

    def __call__(self, *args, **kwargs):
        return self._conn.call(self, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<function {self.__name__} (learner host)>" if self._conn.side == "J" else \
            f"<function {self.__name__}>"


class RemoteObject:
    """An object that lives on the other side; attribute reads and calls go there."""

    __slots__ = ("_conn", "_ref", "_type")

    def __init__(self, conn, ref: int, type_name: str):
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_type", type_name)

    def _special(self, name: str, *args):
        conn = object.__getattribute__(self, "_conn")
        return conn.request("special", ref=object.__getattribute__(self, "_ref"), name=name,
                            args=conn.codec.encode(list(args)))

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        conn = object.__getattribute__(self, "_conn")
        return conn.request("getattr", ref=object.__getattribute__(self, "_ref"), name=name)

    def __setattr__(self, name: str, value) -> None:
        conn = object.__getattribute__(self, "_conn")
        conn.request("setattr", ref=object.__getattribute__(self, "_ref"), name=name, value=conn.codec.encode(value))

    def __repr__(self) -> str:
        return self._special("repr")

    def __str__(self) -> str:
        return self._special("str")

    def __len__(self) -> int:
        return self._special("len")

    def __bool__(self) -> bool:
        return self._special("bool")

    def __iter__(self):
        return self._special("iter")

    def __next__(self):
        return self._special("next")

    def __getitem__(self, key):
        return self._special("getitem", key)

    def __setitem__(self, key, value) -> None:
        self._special("setitem", key, value)

    def __contains__(self, key) -> bool:
        return self._special("contains", key)

    def __enter__(self):
        return self._special("enter")

    def __exit__(self, *exc_info):
        return self._special("exit", None, None, None)

    def __eq__(self, other) -> bool:
        if isinstance(other, RemoteObject):
            return object.__getattribute__(self, "_ref") == object.__getattribute__(other, "_ref")
        return self._special("eq", other)

    def __hash__(self) -> int:
        return hash(("remote", object.__getattribute__(self, "_ref")))

    def __dir__(self):
        return self._special("dir")


class RemoteCallableObject(RemoteObject):
    __slots__ = ()

    def __call__(self, *args, **kwargs):
        return object.__getattribute__(self, "_conn").call(self, *args, **kwargs)


def learner_frames(exc: BaseException, files: set[str]) -> list:
    """The frames of `exc`'s traceback that are in the learner's own files: [file name, line, function, code]."""
    out = []
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in files:
            out.append([frame.filename.rsplit("/", 1)[-1], frame.lineno, frame.name, (frame.line or "").strip()])
    return out[-8:]
