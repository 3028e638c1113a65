"""Issue 15 item 3: each service serves the AsyncAPI document of what it consumes and publishes
on its ops port; together they name every declared topic, each with its payload schema and its
headers (CloudEvents, dead-letter, or a compacted log's)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared import topic_policy, topics
from shared.settings import Settings
from shared.web_ops import ops_app

SERVICES = ("alert", "dispatch", "notify")
# What each service reads (its FastStream subscribers).
CONSUMES = {"alert": {topics.PROGRESS, topics.DELIVERIES},
            "dispatch": {topics.REPORTS, topics.TIPS, topics.UNIDENTIFIED},
            "notify": {topics.REPORTS, topics.DISPATCH, *topics.JOB_TOPICS}}


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0",
                        data_dir=tmp_path_factory.mktemp("asyncapi"))
    out = {}
    for name in SERVICES:
        app = importlib.import_module(f"services.{name}.app").create_app(settings)
        got = TestClient(ops_app(app)).get("/asyncapi.json")  # no lifespan: nothing connects
        assert got.status_code == 200, got.text
        out[name] = got.json()
    return out


def resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def messages(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(topic, message) of every channel of `doc`, refs resolved."""
    out = []
    for channel in doc["channels"].values():
        for ref in channel["messages"].values():
            out.append((channel["address"], resolve(doc, ref["$ref"])))
    return out


def model_names(doc: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The component schemas a payload names (directly or in anyOf/oneOf)."""
    refs = [schema.get("$ref", "")] + [s.get("$ref", "") for key in ("anyOf", "oneOf")
                                       for s in schema.get(key, [])]
    return {r.rsplit("/", 1)[-1] for r in refs if r}


def test_every_declared_topic_is_in_some_services_document(
        documents: dict[str, dict[str, Any]]) -> None:
    named = {topic for doc in documents.values() for topic, _ in messages(doc)}
    declared = {t.name for t in topic_policy.TOPICS}
    assert declared <= named, declared - named


@pytest.mark.parametrize("service", SERVICES)
def test_each_message_has_its_payload_schema_and_headers(
        documents: dict[str, dict[str, Any]], service: str) -> None:
    doc = documents[service]
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"].lower().startswith("homeward")
    for topic, message in messages(doc):
        payload = resolve(doc, message["payload"]["$ref"])
        assert "EmptyPayload" not in message["payload"]["$ref"], topic
        names = model_names(doc, payload) or {payload.get("title", "")}
        for name in names:
            schema = doc["components"]["schemas"].get(name, payload)
            assert schema.get("properties"), (service, topic, name)
        headers = message["headers"]
        if topic in topics.ALL_TOPICS:
            assert {"ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject",
                    "ce_time"} <= set(headers["properties"]), topic
            assert "traceparent" in headers["properties"]
        if topic.endswith(".dlq") and topic != topics.DELIVERIES_DLQ:
            assert "dlq_error" in headers["required"], topic


@pytest.mark.parametrize("service", SERVICES)
def test_what_a_service_consumes_is_a_receive_operation(
        documents: dict[str, dict[str, Any]], service: str) -> None:
    doc = documents[service]
    received = {resolve(doc, op["channel"]["$ref"])["address"]
                for op in doc["operations"].values() if op["action"] == "receive"}
    sent = {resolve(doc, op["channel"]["$ref"])["address"]
            for op in doc["operations"].values() if op["action"] == "send"}
    assert received == CONSUMES[service]
    # It publishes elsewhere than it reads, except notify's planner handing delivery jobs to
    # its own workers (issue 18: the recipient-keyed lanes).
    assert sent and not (sent & received) - set(topics.JOB_TOPICS)


@pytest.mark.parametrize(("topic", "model", "field"), [
    (topics.REPORTS, "ReportAccepted", "accepted_at"),
    (topics.TIPS, "TipReceived", "tip_id"),
    (topics.DISPATCH, "CaseOpened", "leader"),
    (topics.PROGRESS, "CaseEvent", "actor"),
    (topics.DELIVERIES, "DeliveryReceipt", "delivery_id"),
    (topics.CASE_KEYS, "WrappedCaseKey", "kid"),
    (topics.SUBSCRIBERS, "Subscriber", "subscriber_id"),
    (topics.ALERTS, "AlertState", "alert_id"),
])
def test_a_topic_carries_the_model_of_its_contract(
        documents: dict[str, dict[str, Any]], topic: str, model: str, field: str) -> None:
    found = False
    for doc in documents.values():
        for address, message in messages(doc):
            if address != topic:
                continue
            payload = resolve(doc, message["payload"]["$ref"])
            names = model_names(doc, payload)
            if model in names or payload.get("title") == model:
                schema = doc["components"]["schemas"].get(model, payload)
                assert field in schema["properties"], (topic, model)
                found = True
    assert found, (topic, model)
