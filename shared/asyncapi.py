"""The AsyncAPI 3.0 document each service serves at `/asyncapi.json` on its ops port (issue 15
item 3): what it consumes (FastStream's subscribers) and what it publishes, each message with
its payload schema (the pydantic models of shared.events and the service's own records) and
its headers (CloudEvents 1.0 binary mode, `ce_*`, with the W3C `traceparent` of the CloudEvents
distributed-tracing extension; dead-letter topics add `dlq_*`).

FastStream generates the document from the broker: the subscribers `shared.kafka.subscribe`
registered, and a documentation-only publisher per published topic (`declare_publishers`; the
services publish through `EventPublisher`, the alert outbox relay or compacted-log producers,
which FastStream cannot see). `document` then fills in what FastStream cannot infer: the
payload of subscribers (their handler takes the raw message, so that poison is dead-lettered
and not refused by validation) and the headers of every message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel, Field, TypeAdapter

from shared import topics
from shared.case_events import (
    CaseEvent,
    CaseOpened,
    IncidentTied,
    ReportAmended,
    ReportLinked,
    ReportUnlinked,
)
from shared.delivery_events import DeliveryJob, DeliveryReceipt
from shared.report import ReportAccepted
from shared.tip_events import TipReceived
from shared.unidentified import UnidentifiedChildReported


class WrappedCaseKey(BaseModel):
    """Value of `homeward.case-keys.v1` (key: case id; a null value is the purge's tombstone):
    the case's data key wrapped by a master key (shared.pii.MasterKeys.wrap)."""

    kid: str = Field(description="id of the master key that wrapped it")
    n: str = Field(description="AES-GCM nonce, base64url")
    ct: str = Field(description="the wrapped data key, base64url")


class OrganAvailability(BaseModel):
    """Data of `homeward.organ.availability_changed.v1` on the case log (key: organ code)."""

    organ_code: str
    post: str = Field(description="head or deputy")
    available: bool
    reason: str = ""
    actor: str
    at: str = Field(description="ISO 8601")


Payloads = Sequence[type[BaseModel]]

CASE_LOG: Payloads = (CaseOpened, CaseEvent, ReportLinked, ReportUnlinked, IncidentTied,
                      TipReceived, OrganAvailability)
# What dispatch copies to homeward.progress.v1 (shared.events.PROGRESS_TYPES).
PROGRESS_COPIES: Payloads = (CaseOpened, CaseEvent, ReportLinked, ReportUnlinked)
# Payloads of the topics whose messages are shared contracts. The compacted logs of one service
# (notify's subscribers and alerts) are documented by that service with its own models.
SHARED_PAYLOADS: dict[str, Payloads] = {
    topics.REPORTS: (ReportAccepted, ReportAmended),
    topics.TIPS: (TipReceived,),
    topics.DISPATCH: CASE_LOG,
    topics.PROGRESS: PROGRESS_COPIES,
    topics.DELIVERIES: (DeliveryReceipt,),
    topics.DELIVERIES_DLQ: (DeliveryReceipt,),
    topics.CASE_KEYS: (WrappedCaseKey,),
    topics.UNIDENTIFIED: (UnidentifiedChildReported,),
    **{t: (DeliveryJob,) for t in (*topics.JOB_TOPICS,
                                   *(topics.dlq(j) for j in topics.JOB_TOPICS))},
    **{topics.dlq(t): p for t, p in (
        (topics.REPORTS, (ReportAccepted, ReportAmended)), (topics.TIPS, (TipReceived,)),
        (topics.DISPATCH, CASE_LOG), (topics.PROGRESS, PROGRESS_COPIES),
        (topics.DELIVERIES, (DeliveryReceipt,)),
        (topics.UNIDENTIFIED, (UnidentifiedChildReported,)))},
}
# Topics that carry CloudEvents (the compacted logs carry bare records keyed by id).
CLOUDEVENTS_TOPICS = frozenset(topics.ALL_TOPICS)


def _string(description: str) -> dict[str, str]:
    return {"type": "string", "description": description}


CLOUDEVENTS_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0, Kafka protocol binding, binary content mode; the "
                   "distributed-tracing extension's W3C trace context when tracing is on",
    "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject", "ce_time"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": _string("event id; consumers drop a redelivered id"),
        "ce_type": _string("event type, e.g. homeward.report.accepted.v1 (shared.events)"),
        "ce_source": _string("the publishing service, e.g. /homeward/alert"),
        "ce_subject": _string("the case id, also the message key"),
        "ce_time": {"type": "string", "format": "date-time"},
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": _string("W3C Trace Context (00-<trace id>-<span id>-<flags>)"),
        "tracestate": _string("W3C Trace Context vendor state"),
    },
}
DLQ_HEADERS: dict[str, Any] = {
    **CLOUDEVENTS_HEADERS,
    "description": "the dead message's own headers (CloudEvents when it had them) and why",
    "required": ["dlq_error", "dlq_topic", "dlq_partition", "dlq_offset", "dlq_source"],
    "properties": {
        **CLOUDEVENTS_HEADERS["properties"],
        "dlq_error": _string("the exception that made it poison"),
        "dlq_topic": _string("the topic it was read from"),
        "dlq_partition": _string("its partition there"),
        "dlq_offset": _string("its offset there"),
        "dlq_source": _string("the service that dead-lettered it"),
    },
}
RECORD_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "a compacted log's record: keyed by record id, no CloudEvents attributes",
    "properties": {"traceparent": CLOUDEVENTS_HEADERS["properties"]["traceparent"]},
}


def headers_of(topic: str) -> dict[str, Any]:
    if topic.endswith(".dlq") and topic != topics.DELIVERIES_DLQ:
        return DLQ_HEADERS
    return CLOUDEVENTS_HEADERS if topic in CLOUDEVENTS_TOPICS else RECORD_HEADERS


def _union(models: Payloads) -> Any:
    return models[0] if len(models) == 1 else Union[tuple(models)]  # noqa: UP007


def declare_publishers(broker: KafkaBroker, publishes: Mapping[str, Payloads]) -> None:
    """Register a documentation-only FastStream publisher for each topic the service
    publishes to (the messages are sent elsewhere; these only describe them)."""
    for topic, models in publishes.items():
        broker.publisher(topic, schema=_union(models), title=f"{topic}:Publisher",
                         description=topics_description(topic))


def topics_description(topic: str) -> str:
    from shared.topic_policy import policy

    try:
        return policy(topic).purpose
    except KeyError:
        return topic


def _batch_receivers(receives: Mapping[str, str], title: str,
                     version: str) -> dict[str, Any]:
    """The receive operations of topics read by shared.kafka.BatchConsumer (not FastStream
    subscribers): described by subscribers of a broker that is never started."""
    docs = KafkaBroker()
    for topic, group in receives.items():
        async def receive() -> None:  # documentation only (its payload: SHARED_PAYLOADS)
            return None

        receive.__name__ = f"on_{topic.replace('.', '_')}"
        docs.subscriber(topic, group_id=group, title=f"{topic}:BatchSubscriber",
                        description=topics_description(topic))(receive)
    spec: dict[str, Any] = AsyncAPI(docs, title=title, version=version,
                                    schema_version="3.0.0").to_specification().to_jsonable()
    return spec


def document(broker: KafkaBroker, title: str, version: str,
             payloads: Mapping[str, Payloads] | None = None,
             receives: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of `broker`: FastStream's, each message given the payload
    schema of its topic (`payloads` over SHARED_PAYLOADS) and its headers schema. `receives`:
    topic → consumer group of what the service reads with batch consumers (outside FastStream)."""
    known = {**SHARED_PAYLOADS, **(payloads or {})}
    spec: dict[str, Any] = AsyncAPI(broker, title=title, version=version,
                                    schema_version="3.0.0").to_specification().to_jsonable()
    if receives:
        extra = _batch_receivers(receives, title, version)
        for part in ("channels", "operations"):
            spec.setdefault(part, {}).update(extra.get(part, {}))
        for part, values in extra.get("components", {}).items():
            spec.setdefault("components", {}).setdefault(part, {}).update(values)
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    messages = components.setdefault("messages", {})
    for name, channel in spec.get("channels", {}).items():
        topic = channel["address"]
        channel.setdefault("description", topics_description(topic))
        for ref in channel.get("messages", {}).values():
            message = messages[ref["$ref"].rsplit("/", 1)[-1]]
            message["headers"] = headers_of(topic)
            if topic in known and message.get("payload", {}).get("$ref", "").endswith(
                    "/EmptyPayload"):
                payload = TypeAdapter(_union(known[topic])).json_schema(
                    ref_template="#/components/schemas/{model}")
                schemas.update(payload.pop("$defs", {}))
                schemas[f"{name}:Payload"] = payload
                message["payload"] = {"$ref": f"#/components/schemas/{name}:Payload"}
    schemas.pop("EmptyPayload", None)
    return spec
