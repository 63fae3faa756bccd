"""Stand-in for kafka-python's test/service.py, which its PyPI sdist does not ship.

test/integration/fixtures.py imports ExternalService and SpawnedService from it. With
KAFKA_URI set (an already running broker, here Klamm) only ExternalService is used: a
handle on host:port that owns no process. SpawnedService runs Kafka/ZooKeeper from a
local Kafka distribution, which this harness never does.
"""

import logging

__all__ = ["ExternalService", "SpawnedService"]

log = logging.getLogger(__name__)


class ExternalService:
    def __init__(self, host, port):
        log.info("Using already running service at %s:%d", host, port)
        self.host = host
        self.port = port

    def open(self):
        pass

    def close(self):
        pass

    def stop(self):
        pass

    def dump_logs(self):
        pass


class SpawnedService:
    def __init__(self, *args, **kwargs):
        raise RuntimeError(
            "compat/kafka-python runs the suite against an external broker (KAFKA_URI); "
            "spawning Kafka or ZooKeeper is not supported")
