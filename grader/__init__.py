"""kafka-katas grader: runs hidden checks against a real Kafka broker."""

__version__ = "0.1.0"

# The Kafka release every provider runs (local jars, docker image, compose file).
# 4.2.0: the release confluent-kafka-python's own integration suite pins, so the
# client we teach is tested upstream against exactly this broker; it resolves from
# Maven Central with a log4j2 binding that matches its log4j-core (2.25.3).
KAFKA_VERSION = "4.2.0"
