"""The source database of kata-22's checks: tables, rows, the changes made to them and the rows a replica
must end with (not shown to learners)."""

from __future__ import annotations

import json
from decimal import Decimal

# Three replicated tables and one that is not. customers and products share ids (1..5): a replica that
# keys rows by the primary key alone mixes them up. order_lines has a composite key. products and
# order_lines have REPLICA IDENTITY FULL (an update's `before` is the old row); customers the default
# (an update's `before` is null, a delete's holds only the key).
TABLES = ("customers", "products", "order_lines")
DDL = """
CREATE SCHEMA {s};
CREATE TABLE {s}.customers (id int PRIMARY KEY, name text NOT NULL, vip boolean, balance numeric(10,2));
CREATE TABLE {s}.products (id int PRIMARY KEY, title text NOT NULL, price numeric(8,2), stock int);
ALTER TABLE {s}.products REPLICA IDENTITY FULL;
CREATE TABLE {s}.order_lines (order_id int, line_no int, sku text NOT NULL, qty int NOT NULL,
                              PRIMARY KEY (order_id, line_no));
ALTER TABLE {s}.order_lines REPLICA IDENTITY FULL;
CREATE TABLE {s}.audit (id int PRIMARY KEY, note text);
"""
PRIMARY_KEYS = {"customers": ("id",), "products": ("id",), "order_lines": ("order_id", "line_no")}
INITIAL = """
INSERT INTO {s}.customers VALUES (1, 'Ada', true, 12.50), (2, 'Bob', NULL, 0), (3, 'Cyd', false, 310.05),
    (4, 'Dee', true, 7.10), (5, 'Eli', false, NULL), (6, 'Fay', NULL, 99.99);
INSERT INTO {s}.products VALUES (1, 'kettle', 24.90, 3), (2, 'mug', 4.50, 40), (3, 'teapot', 31.00, 7),
    (4, 'tray', 12.00, 0), (5, 'spoon', 1.20, 120);
INSERT INTO {s}.order_lines VALUES (1, 1, 'mug', 2), (1, 2, 'kettle', 1), (2, 1, 'spoon', 6);
INSERT INTO {s}.audit VALUES (1, 'not replicated');
"""
# Records per table on the change topics: one per snapshot row, insert and update; a delete is the
# delete event and its tombstone; a primary-key change is a delete, its tombstone and a create.
INITIAL_RECORDS = {"customers": 6, "products": 5, "order_lines": 3}

# Changes made while the pipeline runs, in three rounds (kata-22's restart check makes round "b" while
# the connector is stopped). Each: (SQL statements of one transaction, records per table).
ROUNDS = {
    "a": [
        (["INSERT INTO {s}.customers VALUES (7, 'Gus', true, 0.01)"], {"customers": 1}),
        (["INSERT INTO {s}.products VALUES (6, 'sieve', 3.30, 15)"], {"products": 1}),
        (["UPDATE {s}.customers SET name = 'Bob B.', balance = 42.00 WHERE id = 2"], {"customers": 1}),
        (["UPDATE {s}.products SET price = 29.50, stock = 6 WHERE id = 3"], {"products": 1}),
        # customers 3 goes, products 3 stays.
        (["DELETE FROM {s}.customers WHERE id = 3"], {"customers": 2}),
    ],
    "b": [
        (["UPDATE {s}.customers SET id = 40 WHERE id = 4"], {"customers": 3}),
        (["INSERT INTO {s}.customers VALUES (8, 'Hal', false, 5.00)",
          "UPDATE {s}.customers SET balance = 6.00 WHERE id = 8",
          "UPDATE {s}.customers SET vip = true, name = 'Hal H.' WHERE id = 8"], {"customers": 3}),
        (["UPDATE {s}.order_lines SET qty = 3 WHERE order_id = 1 AND line_no = 2"], {"order_lines": 1}),
        (["DELETE FROM {s}.order_lines WHERE order_id = 2 AND line_no = 1"], {"order_lines": 2}),
        (["UPDATE {s}.audit SET note = 'still not replicated' WHERE id = 1"], {}),
    ],
    "c": [
        (["INSERT INTO {s}.order_lines VALUES (3, 1, 'tray', 1)"], {"order_lines": 1}),
        # Deleted, then created again with other values: the replica must hold the new row.
        (["DELETE FROM {s}.products WHERE id = 1"], {"products": 2}),
        (["INSERT INTO {s}.products VALUES (1, 'kettle XL', 39.00, 2)"], {"products": 1}),
        (["UPDATE {s}.products SET stock = 119 WHERE id = 5", "DELETE FROM {s}.products WHERE id = 5"],
         {"products": 3}),
        (["UPDATE {s}.customers SET vip = NULL WHERE id = 6"], {"customers": 1}),
    ],
}


def create(pg, schema: str) -> None:
    pg.execute(DDL.format(s=schema))
    pg.execute(INITIAL.format(s=schema))


def make_changes(pg, schema: str, rounds: str) -> None:
    for name in rounds:
        for statements, _ in ROUNDS[name]:
            with pg.transaction():
                for sql in statements:
                    pg.execute(sql.format(s=schema))


def record_counts(rounds: str) -> dict[str, int]:
    """How many records each table's change topic holds after the snapshot and these rounds of changes."""
    counts = dict(INITIAL_RECORDS)
    for name in rounds:
        for _, per_table in ROUNDS[name]:
            for table, n in per_table.items():
                counts[table] += n
    return counts


def as_event_value(value):
    """A column value the way the connector writes it as JSON (NUMERIC as its decimal text)."""
    return str(value) if isinstance(value, Decimal) else value


def canonical_key(key: dict) -> str:
    return json.dumps(key, sort_keys=True)


def table_rows(pg, schema: str) -> dict[tuple[str, str], dict]:
    """{(source, canonical key): row} of every replicated table, as the replica must hold them."""
    rows = {}
    for table in TABLES:
        cur = pg.execute(f"SELECT * FROM {schema}.{table}")
        names = [d.name for d in cur.description]
        for values in cur.fetchall():
            row = {n: as_event_value(v) for n, v in zip(names, values, strict=True)}
            key = {k: row[k] for k in PRIMARY_KEYS[table]}
            rows[(f"{schema}.{table}", canonical_key(key))] = row
    return rows
