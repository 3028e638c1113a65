"""What every part of notify shares (issue 18 §7): the stores, the publisher, the clock, the
case keys, and the few writes all of them make the same way (an alert's state and a push body,
logged on homeward.alerts.v1 before Redis)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.notify.adapters import AlertRepository, HubFeed, SubscriberRepository
from services.notify.domain import AlertState
from services.notify.ledger import DeliveryLedger
from services.notify.timer_store import DurableTimers
from shared import topics
from shared.casekeys import ALERT_FIELDS, BODY_FIELDS, CaseKeys, sealed_json
from shared.kafka import EventPublisher
from shared.settings import Settings


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    settings: Settings
    subscribers: SubscriberRepository
    alerts: AlertRepository
    ledger: DeliveryLedger
    timers: DurableTimers
    feed: HubFeed
    publisher: EventPublisher
    clock: Callable[[], datetime] = field(default=_now)
    keys: CaseKeys | None = None  # seals what notify logs of a case (issue 13)

    def locked(self, alert_id: str) -> Any:
        """One writer of an alert's state at a time across processes (the consumer of its
        partition, and whichever process claimed its timer)."""
        return self.alerts.redis.lock(f"notify:lock:{alert_id}", timeout=30,
                                      blocking_timeout=30)

    async def save(self, alert: AlertState) -> None:
        """The system of record first: the alert's state on the compacted alerts log (its
        personal fields sealed with the case key), then Redis."""
        value = await sealed_json(self.keys, alert.case_id, alert.model_dump(mode="json"),
                                  ALERT_FIELDS)
        await self.publisher.broker.publish(value, topics.ALERTS,
                                            key=f"alert:{alert.alert_id}".encode())
        await self.alerts.save(alert)

    async def put_body(self, key: str, body: dict[str, Any]) -> None:
        """A version's push body, logged sealed (the hub consoles and retries are rebuilt from
        it), then in Redis where the delivery workers read it."""
        value = await sealed_json(self.keys, str(body["case_id"]), body, BODY_FIELDS)
        await self.publisher.broker.publish(value, topics.ALERTS, key=f"body:{key}".encode())
        await self.ledger.put_body(key, body)

    def link(self, alert_id: str) -> str:
        return f"{self.settings.notify_url.rstrip('/')}/api/v1/alerts/{alert_id}.xml"

    def verify_base(self) -> str:
        """Where the public verifies an alert (issue 17 §2): the setting, else notify itself."""
        return (self.settings.verify_base_url or self.settings.notify_url).rstrip("/")
