"""The compacted logs notify rebuilds Redis from (services.notify.rebuild): subscribers on
`homeward.subscribers.v1` (sealed), alert states and push bodies on `homeward.alerts.v1`."""

from __future__ import annotations

import json
from typing import Any

from services.notify.audience import Subscriber
from services.notify.domain import AlertState
from services.notify.sealing import SubscriberSeal
from shared.casekeys import CaseKeys, opened_data
from shared.kafka import Bootstrap

__all__ = ["AlertLog", "CompactedLog", "SubscriberLog"]


class CompactedLog:
    """A compacted topic keyed by record id: its latest record per key is the state."""

    def __init__(self, bootstrap: Bootstrap, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic

    async def ensure_topic(self, replication_factor: int = 1,
                           min_insync_replicas: int = 1) -> None:
        """Create the topic as shared.topic_policy declares it, when `make up` has not."""
        from shared.kafka import ensure_topics

        await ensure_topics(self.bootstrap, replication_factor, min_insync_replicas,
                            names=[self.topic], reconfigure=False)

    async def read_latest(self, timeout_s: float = 30.0) -> dict[str, bytes]:
        """The latest value of every key, from the beginning of the log (tombstones and empty
        values remove the key). TimeoutError when the end is not reached in `timeout_s`."""
        from shared.kafka import read_to_end

        latest: dict[str, bytes] = {}
        async for r in read_to_end(self.bootstrap, self.topic, timeout_s, client="notify"):
            key = r.key.decode() if r.key else ""
            if not r.value:
                latest.pop(key, None)
            else:
                latest[key] = r.value
        return latest


class SubscriberLog(CompactedLog):
    """Every subscriber as its latest record on the compacted `homeward.subscribers.v1`, keyed
    by subscriber id, so Redis's copy and geo indexes can be rebuilt when Redis is flushed."""

    async def read_all(self, seal: SubscriberSeal, timeout_s: float = 30.0) -> list[Subscriber]:
        """The latest record of every subscriber, from the beginning of the log."""
        return [seal.loads(v)
                for v in (await self.read_latest(timeout_s)).values()]


class AlertLog(CompactedLog):
    """`homeward.alerts.v1`: each alert's latest state (`alert:<id>`) and the push body of each
    of its versions (`body:<alert id>:<version>:<scope>`)."""

    async def read_all(
        self, timeout_s: float = 30.0, keys: CaseKeys | None = None
    ) -> tuple[list[AlertState], dict[str, dict[str, Any]]]:
        """Sealed fields (issue 13) come back with the case's key, as markers once purged."""
        alerts, bodies = [], {}
        for key, value in (await self.read_latest(timeout_s)).items():
            if key.startswith("alert:"):
                alerts.append(AlertState.model_validate(
                    await opened_data(keys, json.loads(value))))
            elif key.startswith("body:"):
                bodies[key.removeprefix("body:")] = await opened_data(keys, json.loads(value))
        return alerts, bodies
