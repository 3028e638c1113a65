"""CloudEvents 1.0 in Kafka binary mode: the envelope every event crosses services in.

The value of a message is the JSON `data`; the attributes travel as `ce_*` headers, with
`ce_subject` the case id, which is also the message key. The event types and their payloads are
shared.events.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["CloudEvent", "PoisonMessage"]


class PoisonMessage(ValueError):
    """A message that can never be processed: it goes to the topic's DLQ."""


class CloudEvent(BaseModel):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: str
    source: str
    subject: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    data: dict[str, Any]

    def headers(self) -> dict[str, str]:
        return {
            "ce_specversion": "1.0",
            "ce_id": self.id,
            "ce_type": self.type,
            "ce_source": self.source,
            "ce_subject": self.subject,
            "ce_time": self.time.isoformat(),
            "content-type": "application/json",
        }

    def value(self) -> bytes:
        return json.dumps(self.data, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def of(
        cls, type_: str, source: str, subject: str, data: BaseModel, event_id: str | None = None
    ) -> CloudEvent:
        return cls(
            id=event_id or uuid.uuid4().hex,
            type=type_,
            source=source,
            subject=subject,
            data=data.model_dump(mode="json"),
        )

    @staticmethod
    def encode(
        type_: str, source: str, subject: str, data: BaseModel, event_id: str
    ) -> tuple[dict[str, str], bytes]:
        """Headers and value of a binary-mode message, serialised once (the intake hot path)."""
        headers = CloudEvent(id=event_id, type=type_, source=source, subject=subject,
                             data={}).headers()
        return headers, data.model_dump_json().encode()

    @classmethod
    def from_kafka(cls, headers: dict[str, Any], value: bytes) -> CloudEvent:
        """Parse a binary-mode message; raise PoisonMessage naming what is wrong."""

        def header(name: str) -> str:
            raw = headers.get(name)
            if raw is None:
                raise PoisonMessage(f"missing header {name}")
            return raw.decode() if isinstance(raw, bytes) else str(raw)

        if header("ce_specversion") != "1.0":
            raise PoisonMessage("ce_specversion must be 1.0")
        try:
            data = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PoisonMessage(f"value is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise PoisonMessage("value must be a JSON object")
        raw_time = header("ce_time")
        try:
            time = datetime.fromisoformat(raw_time)
        except ValueError as exc:
            raise PoisonMessage(f"ce_time is not ISO 8601: {exc}") from exc
        return cls(
            id=header("ce_id"),
            type=header("ce_type"),
            source=header("ce_source"),
            subject=header("ce_subject"),
            time=time,
            data=data,
        )
