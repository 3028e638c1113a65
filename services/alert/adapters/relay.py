"""Publishes the outbox to Kafka: rows in the order they were committed (idempotent producer,
acks=all), each marked published once the broker has it, retrying forever with capped
exponential backoff and jitter. Only one process runs it for a shared outbox
(services.alert.duties)."""

from __future__ import annotations

import asyncio
import logging
import random

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.alert.adapters.outbox import Outbox
from shared import telemetry
from shared.kafka import Bootstrap, client_options

__all__ = ["Relay"]

log = logging.getLogger(__name__)


class Relay:
    """Publishes outbox rows to Kafka in order (idempotent producer, acks=all), marks them
    published, and retries forever with capped exponential backoff and jitter."""

    def __init__(self, outbox: Outbox, bootstrap: Bootstrap, batch: int = 500,
                 max_backoff_s: float = 10.0, idle_s: float = 1.0) -> None:
        """`idle_s`: how often an idle relay looks for rows its own process did not signal
        (other worker processes sharing the outbox commit them)."""
        self.outbox = outbox
        self.idle_s = idle_s
        self.bootstrap = bootstrap
        self.batch = batch
        self.max_backoff_s = max_backoff_s
        self.connected = False
        self.published_total = 0
        self._producer: AIOKafkaProducer | None = None
        self._one_at_a_time = asyncio.Lock()  # the loop and drain() must not send a row twice

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **client_options(self.bootstrap), client_id="homeward-alert-relay",
                acks="all", enable_idempotence=True, request_timeout_ms=15_000,
                linger_ms=2,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        self.connected = False
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except Exception:
                pass

    async def kafka_ok(self) -> bool:
        """Whether the relay's producer reaches the broker now (for /readyz)."""
        producer = self._producer
        if producer is None:
            return False
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), 2)
        except Exception:
            return False
        return True

    async def publish_once(self) -> int:
        """Publish one batch of waiting rows; returns how many were published."""
        async with self._one_at_a_time:
            return await self._publish_batch()

    async def _publish_batch(self) -> int:
        producer = await self._producer_started()
        self.connected = True
        rows = await self.outbox.unpublished(self.batch)
        if not rows:
            return 0
        sends, spans = [], []
        tracing = telemetry.enabled()
        for _, entry in rows:
            headers = dict(entry.headers)
            if tracing:  # continues the trace of the request that filed the row
                spans.append(telemetry.relay_span(entry.topic, entry.key, headers))
            sends.append(await producer.send(
                entry.topic, entry.value, key=entry.key.encode(),
                headers=[(k, v.encode()) for k, v in headers.items()],
            ))
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        for span, outcome in zip(spans, outcomes, strict=False):
            telemetry.end_span(span, outcome if isinstance(outcome, BaseException) else None)
        done = [seq for (seq, _), outcome in zip(rows, outcomes, strict=True)
                if not isinstance(outcome, BaseException)]
        if done:
            await self.outbox.mark_published(done)
            self.published_total += len(done)
        failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failed is not None:
            raise failed
        return len(done)

    async def drain(self, timeout_s: float) -> None:
        """Publish what is waiting, for at most `timeout_s`; what is left waits on disk."""
        try:
            async with asyncio.timeout(timeout_s):
                while await self.publish_once():
                    pass
        except Exception as exc:
            log.warning("relay: could not drain the outbox on shutdown: %r", exc)

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                # Cleared before the look, not after: a commit made while the look reads (a
                # wake from this process or another worker's) keeps the event set, and the
                # wait below returns at once instead of after idle_s.
                self.outbox.new_rows.clear()
                if await self.publish_once():
                    backoff = 0.2
                    continue
                try:
                    await asyncio.wait_for(self.outbox.new_rows.wait(), self.idle_s)
                except TimeoutError:
                    pass
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("relay: Kafka unavailable (%r); retrying in %.1fs", exc, backoff)
                await self._drop_producer()
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.max_backoff_s)
            except Exception:
                log.exception("relay: unexpected failure; retrying")
                await self._drop_producer()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def stop(self) -> None:
        await self._drop_producer()
