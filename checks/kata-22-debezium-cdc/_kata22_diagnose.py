"""Why a kata-22 replica differs from its tables: each difference, and the cause the change events point at
(not shown to learners)."""

from __future__ import annotations

import json

from _kata22_pg import canonical_key
from _kata22_support import event_of

from grader.kit import explain


def events_by_key(pipe, records: dict[str, list]) -> dict[tuple[str, str], list[dict]]:
    """{(source, canonical key): [change events, tombstones as None]} in topic order."""
    out: dict[tuple[str, str], list] = {}
    for table, recs in records.items():
        for r in recs:
            key = canonical_key(json.loads(r.key)) if r.key else "null"
            out.setdefault((f"{pipe.schema}.{table}", key), []).append(event_of(r))
    return out


def _show(source_key: tuple[str, str]) -> str:
    return f"{source_key[0].split('.', 1)[1]} {source_key[1]}"


def compare(got: dict, want: dict, events: dict, did: str) -> None:
    """Fail with the first differences between the replica (got) and the tables (want), and their cause."""
    if got.keys() and want.keys() and not {s for s, _ in got} & {s for s, _ in want}:
        explain(did=did + ", then read the replica", seen_in="the replica",
                saw=f"source values {sorted({s for s, _ in got})[:3]}",
                expected=f"the table of each row as schema.table, e.g. {sorted({s for s, _ in want})[0]!r} (the "
                "event's source.schema and source.table)")
    lines, causes = [], []
    for source in sorted({s for s, _ in want} - {s for s, _ in got}):
        causes.append(f"no row of {source.split('.', 1)[1]} reached the replica: is its change topic consumed?")
    for sk in sorted(set(got) | set(want)):
        g, w = got.get(sk), want.get(sk)
        if g is not None and w is not None and g[0] == w:
            continue
        history = events.get(sk, [])
        changes = [e for e in history if e is not None]
        ops = "".join(e["op"] for e in changes)
        if w is None:
            lines.append(f"{_show(sk)} is in the replica ({g[0]}) but not in the table (its events: {ops or 'none'})")
            if changes and changes[-1]["op"] == "d":
                causes.append("a row the table deleted is still in the replica: the delete event (op \"d\") has "
                              "after = null and the key in before; it removes the row")
        elif g is None:
            lines.append(f"{_show(sk)} is missing from the replica (its events: {ops or 'none'}); the table has {w}")
            twins = [k for k in events if k[1] == sk[1] and k[0] != sk[0]
                     and any(e is not None and e["op"] == "d" for e in events[k])]
            if twins:
                causes.append(f"rows of different tables share primary key values: {_show(twins[0])} was deleted, "
                              f"and {_show(sk)} vanished with it. Is a replica row identified by its table and key?")
            elif ops.startswith("r"):
                causes.append("rows read by the snapshot (op \"r\": rows that existed before the connector) are "
                              "changes too")
            elif not changes:
                causes.append("no change event for this row reached its topic")
        else:
            lines.append(f"{_show(sk)} is {g[0]} in the replica, {w} in the table (its events: {ops})")
            before = changes[-1].get("before") if changes else None
            if changes and g[0] == before:
                causes.append("the replica holds the row as it was before the last update: an update event "
                              "carries both images, and `after` is the row now")
            elif {k: str(v) for k, v in g[0].items()} == {k: str(v) for k, v in w.items()}:
                causes.append("the values match as text but not as JSON types: keep the event's values as they "
                              "are (numbers, booleans, null, text)")
            elif changes and isinstance(w.get("balance", w.get("price")), str):
                causes.append("a NUMERIC column arrives as the connector's decimal.handling.mode says: by default "
                              "the unscaled value's bytes, base64-encoded")
    if lines:
        explain(did=did + ", then compared the replica with the tables row by row", seen_in="the replica",
                saw="; ".join(lines[:3]) + (f" (and {len(lines) - 3} more)" if len(lines) > 3 else ""),
                expected="the replica equal to the replicated tables: every row once, with all its columns and "
                "their JSON types, under its table and primary key",
                nudge=(causes[0] + "." if causes else
                       "compare the events of these rows (op, before, after) with what your code wrote."))
    last_lsn = {sk: [e for e in history if e is not None][-1]["source"]["lsn"]
                for sk, history in events.items() if any(e is not None for e in history)}
    wrong_lsn = [(sk, g[1], last_lsn[sk]) for sk, g in got.items() if sk in last_lsn and g[1] != last_lsn[sk]]
    if wrong_lsn:
        sk, has, last = wrong_lsn[0]
        explain(did=did + ", then read the lsn column of the replica", seen_in="the replica",
                saw=f"{len(wrong_lsn)} rows with another lsn than their last change's, e.g. {_show(sk)}: {has}, "
                f"its last change has source.lsn {last}",
                expected="lsn = source.lsn of the change that last wrote the row")
