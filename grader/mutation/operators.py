"""The mutation operator catalog: each operator finds the places in a reference solution's
AST where one small change is a plausible mistake, and says what that change is.

An operator is a function `op(node, ctx) -> list[Change]`, called for every node of the
tree; a Change replaces that one node (or, for statements, removes or reorders it). Generic
operators follow mutmut and cosmic-ray (delete a call, flip a comparison, change a constant,
swallow an exception...); the Kafka-aware ones encode the client mistakes the course teaches
against (a dropped flush(), a flipped `enable.auto.commit`, commit() without its message...).
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Ctx:
    """Where a node sits: its parent, the parent's field, and its index in a statement list."""

    parent: ast.AST | None
    field: str
    index: int | None
    function: str  # qualified name of the enclosing function ("<module>" outside any)
    func_node: ast.AST | None = None  # the enclosing function's node
    in_message: bool = False  # inside an f-string, a raised exception's arguments or a print()/log call


@dataclass
class Change:
    operator: str
    description: str
    # new node(s) for the node's place: one node, a list of statements, or [] to delete it
    replacement: ast.AST | list[ast.AST]
    # for statement swaps: (list owner, field, index) of the pair's first statement
    swap: tuple | None = None


Operator = Callable[[ast.AST, Ctx], list[Change]]
OPERATORS: dict[str, tuple[str, Operator]] = {}  # name -> (kind, function)


def operator(name: str, kind: str = "generic"):
    def register(fn: Operator) -> Operator:
        OPERATORS[name] = (kind, fn)
        return fn
    return register


def _src(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _call_name(call: ast.AST) -> str:
    func = call.func if isinstance(call, ast.Call) else None
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _is_docstring(node: ast.AST, ctx: Ctx) -> bool:
    return (ctx.index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


# ------------------------------------------------------------------ generic operators

KAFKA_CALLS = {"flush", "poll", "close", "commit", "send_offsets_to_transaction", "commit_transaction",
               "abort_transaction", "begin_transaction", "init_transactions", "store_offsets", "seek",
               "assign", "unassign", "subscribe", "produce"}


@operator("delete-call")
def delete_call(node, ctx):
    """A call statement removed (a forgotten step). Kafka calls get their own operator name."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and ctx.index is not None:
        name = _call_name(node.value)
        op = "drop-kafka-call" if name in KAFKA_CALLS else "delete-call"
        return [Change(op, f"removed `{_src(node)}`", [])]
    return []


@operator("swap-statements")
def swap_statements(node, ctx):
    """Two adjacent statements of a function body in the other order (a step done too early)."""
    if ctx.index is None or ctx.function == "<module>" or _is_docstring(node, ctx):
        return []
    siblings = getattr(ctx.parent, ctx.field)
    if ctx.index + 1 >= len(siblings):
        return []
    nxt = siblings[ctx.index + 1]
    skip = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom, ast.Return)
    if isinstance(node, skip) or isinstance(nxt, skip) or _independent(node, nxt) or _crashes(node, nxt, ctx):
        return []
    return [Change("swap-statements", f"swapped `{_src(node)}` with the next statement", [],
                   swap=(ctx.parent, ctx.field, ctx.index))]


def _names(stmt: ast.AST) -> tuple[set[str], set[str], bool]:
    """(names written, names read, has a call) of a statement, by name only."""
    written, read, calls = set(), set(), False
    for n in ast.walk(stmt):
        if isinstance(n, ast.Name):
            (written if isinstance(n.ctx, (ast.Store, ast.Del)) else read).add(n.id)
        elif isinstance(n, (ast.Attribute, ast.Subscript)) and isinstance(n.ctx, (ast.Store, ast.Del)):
            base = n.value
            while isinstance(base, (ast.Attribute, ast.Subscript)):
                base = base.value
            if isinstance(base, ast.Name):
                written.add(base.id)
        elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
            read.add(n.target.id)
        elif isinstance(n, (ast.Call, ast.Await, ast.Yield, ast.Raise, ast.Return, ast.Break, ast.Continue)):
            calls = True
    return written, read, calls


def _independent(a: ast.AST, b: ast.AST) -> bool:
    """Two statements whose order cannot matter: no name one writes is used by the other, and at
    most one of them calls anything. Swapping them is an equivalent mutant, so none is made."""
    wa, ra, ca = _names(a)
    wb, rb, cb = _names(b)
    return not (ca and cb) and not (wa & (rb | wb)) and not (wb & ra)


def _crashes(a: ast.AST, b: ast.AST, ctx: Ctx) -> bool:
    """b reads a name that a binds first: swapped, b raises NameError at once. Such a mutant only
    proves the function is called at all, so none is made."""
    wa, _, _ = _names(a)
    _, rb, _ = _names(b)
    needed = wa & rb
    if not needed or ctx.func_node is None:
        return False
    bound = {arg.arg for arg in ast.walk(ctx.func_node.args) if isinstance(arg, ast.arg)}
    for n in ast.walk(ctx.func_node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and getattr(n, "lineno", 1 << 30) < a.lineno:
            bound.add(n.id)
    return bool(needed - bound)


@operator("arith")
def arith(node, ctx):
    """`x + 1` -> `x`, `x - 1` -> `x`, `+` <-> `-` (off-by-one offsets, counts)."""
    if not isinstance(node, ast.BinOp) or not isinstance(node.op, (ast.Add, ast.Sub)) or ctx.in_message:
        return []
    if isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
        return []  # string concatenation
    if isinstance(node.right, ast.Constant) and isinstance(node.right.value, str):
        return []
    out = []
    if isinstance(node.right, ast.Constant) and isinstance(node.right.value, (int, float)):
        out.append(Change("arith", f"`{_src(node)}` -> `{_src(node.left)}`", copy.deepcopy(node.left)))
    flipped = ast.BinOp(left=copy.deepcopy(node.left), op=ast.Sub() if isinstance(node.op, ast.Add) else ast.Add(),
                        right=copy.deepcopy(node.right))
    out.append(Change("arith", f"`{_src(node)}` -> `{_src(flipped)}`", flipped))
    return out


_COMPARE_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                  ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}


@operator("compare")
def compare(node, ctx):
    """`<` <-> `<=`, `>` <-> `>=`, `==` <-> `!=`, `is` <-> `is not`, `in` <-> `not in`."""
    if not isinstance(node, ast.Compare) or ctx.in_message:
        return []
    out = []
    for i, op in enumerate(node.ops):
        swap = _COMPARE_SWAPS.get(type(op))
        if swap:
            new = copy.deepcopy(node)
            new.ops[i] = swap()
            out.append(Change("compare", f"`{_src(node)}` -> `{_src(new)}`", new))
    return out


PACING_CALLS = {"poll", "sleep", "consume", "wait"}


@operator("constant")
def constant(node, ctx):
    """A number changed (to 0, or 0 -> 1, small ints +1) and True <-> False."""
    if not isinstance(node, ast.Constant) or ctx.in_message:
        return []  # a number in an error message changes only the message
    value = node.value
    if isinstance(value, bool):
        return [Change("constant", f"`{value}` -> `{not value}`", ast.Constant(not value))]
    if not isinstance(value, (int, float)) or isinstance(ctx.parent, ast.Dict):
        return []
    if isinstance(ctx.parent, ast.BinOp) and ctx.field == "right" and value == 1:
        return []  # `x + 1` is the arith operator's
    if isinstance(ctx.parent, ast.BinOp) and value == 1000:
        return []  # the ms-factor operator's
    if isinstance(ctx.parent, ast.Call) and _call_name(ctx.parent) in PACING_CALLS:
        return []  # how long one poll()/sleep() waits paces a loop; it does not change what the loop does
    # One change per number: small counts and indexes move by one (mutmut's choice), other
    # numbers (timeouts, sizes) drop to 0, where a wait that gave the broker time gives it none.
    new = value + 1 if isinstance(value, int) and 0 <= value <= 2 else 0
    return [Change("constant", f"`{value}` -> `{new}`", ast.Constant(new))]


@operator("except-pass")
def except_pass(node, ctx):
    """An `except` body replaced by `pass` (an error swallowed)."""
    if isinstance(node, ast.ExceptHandler) and not (len(node.body) == 1 and isinstance(node.body[0], ast.Pass)):
        new = copy.deepcopy(node)
        new.body = [ast.Pass()]
        return [Change("except-pass", f"`except {_src(node.type) if node.type else ''}` body -> pass", new)]
    return []


@operator("remove-raise")
def remove_raise(node, ctx):
    """A `raise` removed (a failure goes unreported)."""
    if isinstance(node, ast.Raise) and ctx.index is not None:
        return [Change("remove-raise", f"removed `{_src(node)}`", [])]
    return []


@operator("early-return")
def early_return(node, ctx):
    """A `return` inserted before a loop or before a function's last statement (work left undone)."""
    if ctx.index is None or ctx.function == "<module>" or not isinstance(ctx.parent, (ast.FunctionDef,
                                                                                       ast.AsyncFunctionDef)):
        return []
    body = ctx.parent.body
    last = ctx.index == len(body) - 1
    if not (isinstance(node, (ast.For, ast.While)) or (last and not isinstance(node, ast.Return))):
        return []
    if _is_docstring(node, ctx):
        return []
    return [Change("early-return", f"`return` before `{_src(node)}`", [ast.Return(value=None), node])]


@operator("remove-break")
def remove_break(node, ctx):
    """A loop's `break` removed."""
    if isinstance(node, ast.Break) and ctx.index is not None:
        return [Change("remove-break", "removed `break`", [])]
    return []


# ------------------------------------------------------------------ Kafka-aware operators

# Config values the course teaches, and the mistaken value a learner writes instead.
CONFIG_FLIPS = {
    "acks": "1",
    "isolation.level": {"read_committed": "read_uncommitted", "read_uncommitted": "read_committed"},
    "auto.offset.reset": {"earliest": "latest", "smallest": "largest", "latest": "earliest", "largest": "smallest"},
    "partitioner": "random",
    "compression.type": "none",
    "linger.ms": 0,
    "max.in.flight.requests.per.connection": 100,
}
BOOL_KEYS = ("enable.idempotence", "enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof",
             "allow.auto.create.topics")
NEVER_DROP = ("bootstrap.servers", "group.id")  # dropping them only breaks everything at once


UNDOTTED_KEYS = {"acks", "retries", "partitioner", "debug"}  # librdkafka properties without a dot


def _config_key(node) -> str | None:
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return None
    value = node.value
    dotted = "." in value and " " not in value and "/" not in value and not value.startswith(".")
    return value if dotted or value in UNDOTTED_KEYS else None


def _flip_value(key: str, value: ast.AST) -> ast.AST | None:
    if key in BOOL_KEYS:
        if isinstance(value, ast.Constant) and isinstance(value.value, bool):
            return ast.Constant(not value.value)
        if isinstance(value, ast.Constant) and value.value in ("true", "false"):
            return ast.Constant("false" if value.value == "true" else "true")
        return ast.UnaryOp(op=ast.Not(), operand=copy.deepcopy(value))
    if key == "transactional.id":
        # A new id per instance: no fencing of the zombie, no recovery of its open transaction.
        return ast.parse(f"{ast.unparse(value)} + __import__('uuid').uuid4().hex", mode="eval").body
    if key in ("message.timeout.ms", "delivery.timeout.ms", "transaction.timeout.ms", "session.timeout.ms"):
        return None  # their numbers are the constant operator's
    flip = CONFIG_FLIPS.get(key)
    if isinstance(flip, dict):
        if isinstance(value, ast.Constant) and value.value in flip:
            return ast.Constant(flip[value.value])
        return None
    if flip is not None and not (isinstance(value, ast.Constant) and value.value == flip):
        return ast.Constant(flip)
    return None


@operator("config", kind="kafka")
def config(node, ctx):
    """A client config key dropped, or its value flipped, in a dict literal or `conf[key] = value`."""
    out = []
    if isinstance(node, ast.Dict):
        for i, (k, v) in enumerate(zip(node.keys, node.values, strict=True)):
            key = _config_key(k)
            if not key or key in NEVER_DROP:
                continue
            dropped = copy.deepcopy(node)
            del dropped.keys[i], dropped.values[i]
            out.append(Change("config-drop", f"dropped config `{key}`", dropped))
            flipped_value = _flip_value(key, v)
            if flipped_value is not None:
                flipped = copy.deepcopy(node)
                flipped.values[i] = flipped_value
                out.append(Change("config-flip", f"`{key}`: `{_src(v)}` -> `{_src(flipped_value)}`", flipped))
    elif (isinstance(node, ast.Assign) and ctx.index is not None and len(node.targets) == 1
          and isinstance(node.targets[0], ast.Subscript)):
        key = _config_key(node.targets[0].slice)
        if key and key not in NEVER_DROP:
            out.append(Change("config-drop", f"removed `{_src(node)}`", []))
            flipped_value = _flip_value(key, node.value)
            if flipped_value is not None:
                new = copy.deepcopy(node)
                new.value = flipped_value
                out.append(Change("config-flip", f"`{key}`: `{_src(node.value)}` -> `{_src(flipped_value)}`", new))
    return out


@operator("flush-result", kind="kafka")
def flush_result(node, ctx):
    """`n = p.flush(t)` / `if p.flush(t):` -> the call's result taken as 0 (what is left is never looked at)."""
    if isinstance(node, ast.Call) and _call_name(node) == "flush" and not isinstance(ctx.parent, ast.Expr):
        return [Change("drop-kafka-call", f"`{_src(node)}` -> `0`", ast.Constant(0))]
    return []


@operator("call-keywords", kind="kafka")
def call_keywords(node, ctx):
    """commit(message=m) -> commit(); asynchronous=False -> True; callbacks and keys dropped."""
    if not isinstance(node, ast.Call):
        return []
    name = _call_name(node)
    out = []
    for i, kw in enumerate(node.keywords):
        if kw.arg == "asynchronous" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, bool):
            new = copy.deepcopy(node)
            new.keywords[i].value = ast.Constant(not kw.value.value)
            out.append(Change("commit-async", f"`asynchronous={kw.value.value}` -> `{not kw.value.value}`", new))
        elif name == "commit" and kw.arg in ("message", "offsets"):
            new = copy.deepcopy(node)
            del new.keywords[i]
            out.append(Change("commit-without-position", f"`{_src(node)}` -> `{_src(new)}`", new))
        elif kw.arg in ("on_assign", "on_revoke", "on_lost", "on_delivery", "callback"):
            new = copy.deepcopy(node)
            del new.keywords[i]
            out.append(Change("drop-callback", f"dropped `{kw.arg}=` from `{name}()`", new))
        elif kw.arg == "key" and name == "produce" and not (isinstance(kw.value, ast.Constant)
                                                          and kw.value.value is None):
            new = copy.deepcopy(node)
            new.keywords[i].value = ast.Constant(None)
            out.append(Change("key-none", f"`key={_src(kw.value)}` -> `key=None`", new))
    if name == "commit" and node.args and not node.keywords:
        new = copy.deepcopy(node)
        new.args = []
        out.append(Change("commit-without-position", f"`{_src(node)}` -> `{_src(new)}`", new))
    return out


@operator("ms-factor", kind="kafka")
def ms_factor(node, ctx):
    """A ×1000 / ÷1000 seconds<->milliseconds factor removed."""
    if not isinstance(node, ast.BinOp) or not isinstance(node.op, (ast.Mult, ast.Div, ast.FloorDiv)):
        return []
    for side, other in (("right", "left"), ("left", "right")):
        c = getattr(node, side)
        if isinstance(c, ast.Constant) and c.value in (1000, 1000.0, 1_000_000, 1e3, 1e6):
            return [Change("ms-factor", f"`{_src(node)}` -> `{_src(getattr(node, other))}`",
                           copy.deepcopy(getattr(node, other)))]
    return []
