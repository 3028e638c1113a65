"""The operators' amendment of a report before its case group (issue 18, Contract: alert
`PATCH /api/v1/reports/{report_id}`): who may, until when, what is refused and what is stored
in the outbox (a real SQLite outbox on disk; dispatch's progress is a table here — the Redis
store and Kafka are exercised in tests/integration/test_report_amend.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.alert.adapters.outbox import Outbox
from services.alert.adapters.outbox_rows import Stored
from services.alert.adapters.progress import ProgressStore
from services.alert.amend import ReportAmendments, may_amend
from services.alert.app import create_app
from services.alert.domain import IntakeRefused
from services.alert.handlers import Intake
from shared import topics
from shared.amendment import DetailsAmendment
from shared.auth import Principal, Role, mint_token
from shared.events import AMENDABLE_DETAILS, REPORT_AMENDED, CloudEvent, ReportAmended
from shared.report import Report
from shared.settings import Settings
from tests.helpers import report_body


def who(sub: str, region: str = "140403", role: Role = Role.operator) -> Principal:
    return Principal(sub=sub, role=role, region=region)


def stored(operator: str = "op-1", region: str = "140403", kind: str = "report") -> Stored:
    return Stored("R1", kind, {"case_id": "C1"}, region, operator, False)


@pytest.mark.parametrize(("row", "caller", "allowed"), [
    (stored(), who("op-1"), True),                              # who filed it
    (stored(), who("op-2", "140403"), True),                    # the county's next operator
    (stored(), who("op-3", "140400"), True),                    # the city's call centre
    (stored(), who("op-4", "000000"), True),                    # national
    (stored(), who("op-5", "140402"), False),                   # a neighbouring county
    (stored(), who("op-6", "110000"), False),                   # another province
    (stored(region="110101"), who("op-1", "140403"), True),     # its filer, wherever it is
    (stored(kind="tip"), who("op-1"), False),                   # not a report
    (stored(kind="amendment"), who("op-1"), False),             # an amendment's own id
    (None, who("op-1"), False),
])
def test_who_may_amend(row: Stored | None, caller: Principal, allowed: bool) -> None:
    assert may_amend(row, caller) is allowed


class Opened:
    """Dispatch's progress as alert's consumer recorded it (the ProgressStore's question):
    report's case id → the case whose group owns it."""

    def __init__(self) -> None:
        self.groups: dict[str, str] = {}

    async def case_group(self, case_id: str) -> str | None:
        return self.groups.get(case_id)


@pytest.fixture
async def outbox(tmp_path: Path) -> Any:
    box = Outbox(tmp_path / "outbox.sqlite3")
    await box.start()
    yield box
    await box.stop()


@pytest.fixture
def opened() -> Opened:
    return Opened()


@pytest.fixture
def amendments(outbox: Outbox, opened: Opened) -> ReportAmendments:
    intake = Intake(outbox, cast(Any, None), boundaries=None,
                    progress=cast(ProgressStore, opened))
    return ReportAmendments(intake)


async def filed(amendments: ReportAmendments, operator: str = "op-1") -> tuple[str, str]:
    appended = await amendments.intake.file_report(Report.model_validate(report_body()),
                                                   who(operator))
    return appended.answer["report_id"], appended.answer["case_id"]


async def test_an_amendment_is_durable_on_the_reports_topic_keyed_by_the_case(
    amendments: ReportAmendments, outbox: Outbox,
) -> None:
    report_id, case_id = await filed(amendments)
    body = DetailsAmendment(description="穿红色外套", photo_urls=["https://p.example.cn/a.jpg"],
                            reason="家属补充")
    answer, replayed = await amendments.amend(report_id, body, who("op-2", "140400"))
    assert not replayed
    assert answer["case_id"] == case_id and answer["report_id"] == report_id
    assert answer["amended"] == ["description", "photo_urls"]
    rows = [e for _, e in await outbox.unpublished(10) if e.kind == "amendment"]
    assert len(rows) == 1
    row = rows[0]
    assert (row.topic, row.key, row.record_id) == (topics.REPORTS, case_id,
                                                   answer["amendment_id"])
    event = CloudEvent(type=row.headers["ce_type"], source="/t", subject=case_id,
                       data=json.loads(row.value))
    assert event.type == REPORT_AMENDED
    data = ReportAmended.model_validate(event.data)
    assert data.report_id == report_id and data.actor == "op-2" and data.reason == "家属补充"
    assert data.amended == {"description": "穿红色外套",
                            "photo_urls": ["https://p.example.cn/a.jpg"]}
    assert data.fields == ["description", "photo_urls"]


async def test_after_the_case_group_is_formed_the_case_is_the_place(
    amendments: ReportAmendments, opened: Opened, outbox: Outbox,
) -> None:
    report_id, case_id = await filed(amendments)
    # Its own case opened, or the report linked to another child's case (the same child).
    for group in (case_id, "140400-20261130-OWNERX"):
        opened.groups[case_id] = group
        with pytest.raises(IntakeRefused) as refused:
            await amendments.amend(report_id, DetailsAmendment(height_cm=120), who("op-1"))
        assert (refused.value.status, refused.value.code, refused.value.field) == (
            409, "case_group_formed", "report_id")
        assert refused.value.context == {"case_id": group,
                                         "amend_at": f"/api/v1/cases/{group}/details"}
    assert [e.kind for _, e in await outbox.unpublished(10)] == ["report"]  # nothing stored


@pytest.mark.parametrize(("caller", "status", "code"), [
    (who("op-5", "140402"), 404, "not_found"),
    (who("op-1"), 422, "nothing_amended"),
])
async def test_refusals(amendments: ReportAmendments, caller: Principal, status: int,
                        code: str) -> None:
    report_id, _ = await filed(amendments)
    body = DetailsAmendment(reason="只写原因") if code == "nothing_amended" else \
        DetailsAmendment(vehicle="晋D·12345")
    with pytest.raises(IntakeRefused) as refused:
        await amendments.amend(report_id, body, caller)
    assert (refused.value.status, refused.value.code) == (status, code)


async def test_a_retry_with_the_same_idempotency_key_is_answered_once(
    amendments: ReportAmendments, outbox: Outbox,
) -> None:
    report_id, _ = await filed(amendments)
    body = DetailsAmendment(suspect="中年男子，戴眼镜")
    first, _ = await amendments.amend(report_id, body, who("op-1"), "k-1")
    again, replayed = await amendments.amend(report_id, body, who("op-1"), "k-1")
    assert replayed and again == first
    with pytest.raises(IntakeRefused) as refused:
        await amendments.amend(report_id, DetailsAmendment(suspect="别人"), who("op-1"), "k-1")
    assert refused.value.code == "idempotency_conflict"
    assert sum(e.kind == "amendment" for _, e in await outbox.unpublished(10)) == 1


def test_the_amendable_fields_are_the_contract() -> None:
    assert set(DetailsAmendment.model_fields) - {"reason"} == set(AMENDABLE_DETAILS)
    with pytest.raises(ValidationError):
        DetailsAmendment.model_validate({"name": "改名"})


# --- through the API (no lifespan: refused before anything is stored) ---------------------------

@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(Settings()))


def bearer(role: Role = Role.operator, region: str = "140403") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(Settings(), role, region)}"}


@pytest.mark.parametrize(("body", "field", "code"), [
    ({"description": "x" * 1001}, "description", "too_long"),
    ({"height_cm": 500}, "height_cm", "less_than_equal"),
    ({"height_cm": 10}, "height_cm", "greater_than_equal"),
    ({"weight_kg": 0}, "weight_kg", "greater_than_equal"),
    ({"photo_urls": ["ftp://example.org/p.jpg"]}, "photo_urls.0", "url_scheme"),
    ({"photo_urls": ["https://p.example.cn/x.jpg"] * 11}, "photo_urls", "too_long"),
    ({"suspect": "x" * 501}, "suspect", "too_long"),
    ({"vehicle": "x" * 101}, "vehicle", "too_long"),
    ({"child_name": "改名"}, "child_name", "extra_forbidden"),
    ({"height_cm": "tall"}, "height_cm", "int_parsing"),
])
def test_a_bad_amendment_is_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str, code: str,
) -> None:
    response = client.patch("/api/v1/reports/R1", json=body, headers=bearer())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field, error
    assert error["details"][0]["code"] == code


@pytest.mark.parametrize(("role", "status"), [(Role.hub, 403), (Role.commander, 403),
                                              (None, 401)])
def test_only_operators_amend_reports(client: TestClient, role: Role | None,
                                      status: int) -> None:
    headers = bearer(role) if role else {}
    response = client.patch("/api/v1/reports/R1", json={"height_cm": 120}, headers=headers)
    assert response.status_code == status


def test_the_409_names_the_case_and_dispatchs_command_in_both_languages(
    client: TestClient,
) -> None:
    from shared import i18n
    for lang in ("zh-CN", "en"):
        text = i18n.message("case_group_formed", lang, "", case_id="140403-20261130-ABCDEF",
                            amend_at="/api/v1/cases/140403-20261130-ABCDEF/details")
        assert "140403-20261130-ABCDEF" in text
        assert "/api/v1/cases/140403-20261130-ABCDEF/details" in text


async def test_unidentified_records_keep_their_idempotency_through_the_shared_commit(
    amendments: ReportAmendments, outbox: Outbox,
) -> None:
    """Intake.commit is the one outbox append with an Idempotency-Key (reports' amendments and
    unidentified children's records, issue 16)."""
    from datetime import UTC, datetime

    from services.alert.unidentified import UnidentifiedIntake
    from shared.unidentified import UnidentifiedChildRequest

    records = UnidentifiedIntake(amendments.intake)
    body = UnidentifiedChildRequest.model_validate({
        "sex": "male", "apparent_age": {"min": 6, "max": 8}, "height_cm": 117,
        "description": "蓝色羽绒服", "organisation": "代县人民医院",
        "found": {"at": datetime.now(UTC).isoformat(), "lat": 38.888, "lon": 113.11,
                  "address": "代县人民医院急诊科"},
        "circumstances": "一名男子将孩子留在急诊科后离开"})
    first, replayed = await records.file(body, who("op-1", "140923"), "u-1")
    assert not replayed
    again, replayed = await records.file(body, who("op-1", "140923"), "u-1")
    assert replayed and again == first
    other = body.model_copy(update={"height_cm": 120})
    with pytest.raises(IntakeRefused) as refused:
        await records.file(other, who("op-1", "140923"), "u-1")
    assert (refused.value.status, refused.value.field) == (409, "Idempotency-Key")
    assert sum(e.kind == "unidentified" for _, e in await outbox.unpublished(10)) == 1
