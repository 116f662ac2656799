"""kata-16: route poison pills to a dead-letter topic and keep consuming.

Implement consume_with_dead_letters(): process every order; a record that cannot be
processed goes to the dead-letter topic (DLQ) with headers that say where it came from and
what went wrong, and the consumer goes on. Read README.md first.
"""

import json
from collections.abc import Callable

from confluent_kafka import Consumer, Producer  # noqa: F401 (you will need Producer for the DLQ)


def parse_order(value: bytes | None) -> dict:
    """The order in a record's value; raises if it is not a JSON object with order_id and amount."""
    order = json.loads(value)
    # TODO: is every value UTF-8 JSON? And a JSON object is not necessarily an order: check the
    #       fields the README requires.
    return order


def consume_with_dead_letters(bootstrap_servers: str, topic: str, group_id: str, dlq_topic: str,
                              consumer_config: dict, process: Callable[[dict], None],
                              should_stop: Callable[[], bool]) -> None:
    """Consume `topic` in group `group_id` until should_stop(); dead-letter what cannot be processed.

    consumer_config: extra consumer settings; add every entry to your consumer's configuration.
    process(order): the business logic; call it with each valid order (a dict). It may raise.
    dlq_topic: where poison pills go, with the headers the README lists.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, **consumer_config})
    consumer.subscribe([topic])
    try:
        while not should_stop():
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            # TODO: a record that is not an order, or whose process() raises, must not stop the
            #       consumer: copy it to the DLQ (its key, value and own headers unchanged) plus
            #       the README's headers, and make sure the DLQ has it before the commit below.
            process(parse_order(msg.value()))
            # TODO: is this the right moment to commit, for good records and for poison pills?
            raise NotImplementedError("commit each record once it is handled")
    finally:
        consumer.close()
