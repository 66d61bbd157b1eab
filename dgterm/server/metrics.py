"""The Prometheus metrics of `dgterm serve` (``GET /metrics``): requests by route and status,
the batch size of each decoder forward, committed tokens, and the batcher's queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from dgterm.engine.local.batch import Batcher

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """One registry per server (tests run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dgterm_requests", "HTTP requests", ["route", "code"], registry=self.registry)
        self.batch = Histogram("dgterm_batch_size", "Sequences in each decoder forward",
                               buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.tokens = Counter("dgterm_generated_tokens", "Tokens committed (rate() gives tok/s)",
                              registry=self.registry)

    def watch(self, batcher: Batcher) -> None:
        """Gauges read from ``batcher`` at each scrape."""
        Gauge("dgterm_queue_depth", "Sequences waiting for a place in the batch",
              registry=self.registry).set_function(lambda: batcher.depth)
        Gauge("dgterm_running_sequences", "Sequences in the batch",
              registry=self.registry).set_function(lambda: batcher.running)

    def exposition(self) -> bytes:
        """The text a Prometheus scrape reads (served as :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
