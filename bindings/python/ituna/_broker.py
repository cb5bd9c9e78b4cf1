"""ituna.EmbeddedBroker: librdkafka's built-in Kafka-protocol test cluster, over the
C extension's mock_cluster_* calls (cold code, kept out of the C)."""
from __future__ import annotations

from types import TracebackType
from typing import Any, Literal, Optional

from . import _core


class EmbeddedBroker:
    """librdkafka's built-in Kafka-protocol TEST cluster running in this process
    (not Apache Kafka). Made by ituna.start_embedded_broker()."""

    __slots__ = ("_cluster",)

    def __init__(self, cluster: Any) -> None:
        self._cluster = cluster  # the C capsule; the cluster stops with its last reference

    @property
    def bootstrap(self) -> str:
        """'127.0.0.1:port,...' of the embedded broker (StateError once stopped)."""
        return _core.mock_cluster_bootstrap(self._cluster)

    def create_topic(self, topic: str, partitions: int = 4) -> None:
        """Create the topic now (an existing one is kept), so consumers can subscribe
        before anything is produced."""
        _core.mock_cluster_create_topic(self._cluster, topic, partitions)

    def stop(self) -> None:
        """Stop the embedded broker. Idempotent."""
        _core.mock_cluster_stop(self._cluster)

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]] = None, exc_value: Optional[BaseException] = None,
                 traceback: Optional[TracebackType] = None) -> Literal[False]:
        self.stop()
        return False


EmbeddedBroker.__module__ = "ituna"


def start_embedded_broker(n_brokers: int = 1, partitions: int = 4) -> EmbeddedBroker:
    """Start librdkafka's built-in Kafka-protocol TEST cluster (not Apache Kafka) inside
    this process on 127.0.0.1. .bootstrap gives its address; .stop() ends it."""
    return EmbeddedBroker(_core.mock_cluster_start(n_brokers, partitions))
