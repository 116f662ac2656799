"""Helpers for the kata-01 checks: the orders they publish, and where a keyed partitioner puts a key.

The checks only accept partitions that a producer's own keyed partitioner would choose, so
they need librdkafka's hash functions: CRC-32 (`consistent`, `consistent_random`, the
default), murmur2 (`murmur2`, `murmur2_random`, what the Java client uses) and FNV-1a
(`fnv1a`, `fnv1a_random`). Each was compared with the client's own choice for non-ASCII keys
on 5- and 7-partition topics before it was written down here.
"""

from __future__ import annotations

import zlib

# Non-ASCII ids on purpose: the key must be the id's UTF-8 bytes, not another encoding.
CUSTOMERS = ["cust-ada", "cust-bob", "cust-zoë", "客户-7", "cust-eli", "cust-fay", "cust-gus", "cust-hal",
             "cust-ivy"]
ORDERS_PER_CUSTOMER = 6


def make_orders() -> list[dict]:
    """Interleaved customers (a customer's orders are mixed with everyone else's), order ids that
    do not sort in list order, and values a JSON round trip must keep exactly."""
    orders = []
    for seq in range(ORDERS_PER_CUSTOMER):
        for n, customer in enumerate(CUSTOMERS):
            orders.append({"order_id": f"ord-{zlib.crc32(f'{seq}/{n}'.encode()) & 0xFFFF:04x}",
                           "customer_id": customer, "seq": seq, "amount": round(9.99 + seq * 1.5, 2),
                           "items": [{"sku": f"sku-{n}", "qty": seq + 1}], "note": "crème brûlée" if n % 3 else "",
                           "gift": seq % 2 == 0})
    return orders


def _murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c), as the Java client and librdkafka's murmur2 compute it."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[i * 4:i * 4 + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[n4 * 4:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def _fnv1a(data: bytes) -> int:
    """librdkafka's FNV-1a: 32 bits, then read as a signed int and made positive with abs()."""
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return abs(h - (1 << 32) if h & 0x80000000 else h)


PARTITIONERS = {
    "CRC-32 (librdkafka's default, consistent_random)": lambda key, n: zlib.crc32(key) % n,
    "murmur2 (the Java client's, murmur2_random)": lambda key, n: (_murmur2(key) & 0x7FFFFFFF) % n,
    "FNV-1a (fnv1a_random)": lambda key, n: _fnv1a(key) % n,
}


def default_partition(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions


def keyed_partitioners_matching(placed: list[tuple[bytes, int, int]]) -> list[str]:
    """The keyed partitioners that put every (key, partition count, partition) where it is."""
    return [name for name, fn in PARTITIONERS.items() if all(fn(k, n) == p for k, n, p in placed)]
