"""Intake of children met or found without a guardian (来历不明儿童 / 强制报告, issue 16 item 4):
the use case and its HTTP entrypoints (`POST /api/v1/unidentified-children`, the form at
`GET /intake/unidentified`).

A record is made durable in the outbox (like a report: on disk before the 202) and published
by the relay to homeward.unidentified-children.v1, keyed by record id; its personal fields are
sealed with the record's own data key (shared/casekeys.py keyed by record id, made durable
through the outbox before the record, issue 13). Sources: 002 §三㈢, 002 §二㈠3., 004 (2)(5).
"""


import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import FileResponse, JSONResponse

from services.alert import place
from services.alert.adapters.outbox_rows import OutboxEntry
from services.alert.domain import IntakeRefused
from services.alert.handlers import Intake
from services.alert.retention import photo_names
from shared import case_ids, pii, topics
from shared.auth import Principal, Role
from shared.events import UNIDENTIFIED_CHILD_REPORTED, CloudEvent
from shared.unidentified import (
    RECORD_FIELDS,
    RecordAnswer,
    UnidentifiedChildReported,
    UnidentifiedChildRequest,
)
from shared.web import Authenticator

UI_PAGE = "unidentified.html"


def _found_field(name: str | None) -> str | None:
    """A place error named on the report's `last_seen.*` is this body's `found.*`."""
    return name.replace("last_seen.", "found.", 1) if name else name


@dataclass
class UnidentifiedIntake:
    """Files unidentified-child records through the report intake's outbox, keys and photos."""

    intake: Intake
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def file(self, body: UnidentifiedChildRequest, who: Principal,
                   idempotency_key: str | None = None) -> tuple[dict[str, object], bool]:
        """(the 202 answer {record_id, status, region_code, organisation}, replayed). Raises
        IntakeRefused 422 `organisation_required` (an operator must name the reporting
        organisation; a mandated reporter's comes from the token), the place errors of
        services/alert/place.py on `found.*`, 409 `idempotency_conflict`."""
        organisation = who.org if who.role is Role.mandated_reporter else body.organisation
        if not organisation:
            raise IntakeRefused(422, "organisation_required", "organisation")
        intake = self.intake
        try:
            where = place.locate(body.found, intake.regions,
                                 intake.boundaries() if intake.boundaries else None)
        except IntakeRefused as exc:
            raise IntakeRefused(exc.status, exc.code, _found_field(exc.field),
                                **exc.context) from exc
        now = self.clock()
        record_id, fresh = await intake.new_owner(
            lambda: case_ids.new_unidentified_id(where.code, now))
        record = UnidentifiedChildReported(
            record_id=record_id, received_at=now, reporter=who.sub, reporter_role=who.role.value,
            organisation=organisation, region_code=where.code, lat=where.lat, lon=where.lon,
            address=body.found.address, found_at=body.found.at, sex=body.sex,
            age_min=body.apparent_age.min, age_max=body.apparent_age.max,
            height_cm=body.height_cm, description=body.description,
            photo_urls=[str(u) for u in body.photo_urls], circumstances=body.circumstances,
            exercise=body.exercise)
        headers, value = CloudEvent.encode(UNIDENTIFIED_CHILD_REPORTED, intake.source,
                                           record_id, record, event_id=record_id)
        if fresh is not None:
            key = fresh[0]
            value = json.dumps(pii.seal(record.model_dump(mode="json"), RECORD_FIELDS,
                                        record_id, key),
                               ensure_ascii=False, separators=(",", ":")).encode()
        if intake.photos is not None:  # restricted to the record's region, never public
            await intake.photos.attach(record_id, where.code, photo_names(
                record.photo_urls, intake.public_url), False, who)
        answer = RecordAnswer(record_id=record_id, region_code=where.code,
                              organisation=organisation).model_dump()
        appended = await intake.commit(OutboxEntry(
            record_id=record_id, kind="unidentified", topic=topics.UNIDENTIFIED,
            key=record_id, headers=headers, value=value, answer=answer,
            region=where.code, operator=who.sub), idempotency_key,
            hashlib.sha256(body.model_dump_json().encode()).hexdigest(),
            key_record=None if fresh is None else fresh[1])
        return appended.answer, appended.replayed


def build_unidentified_router(auth: Authenticator, intake: UnidentifiedIntake) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["unidentified children"])
    Reporter = Annotated[Principal, Depends(auth.require(Role.operator,
                                                         Role.mandated_reporter))]

    @router.post("/unidentified-children", status_code=202, response_model=RecordAnswer,
                 responses={409: {"description": "idempotency_conflict"}})
    async def post_record(
        body: UnidentifiedChildRequest, who: Reporter,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        """A child met or found without a guardian (来历不明儿童; 强制报告 for hospitals,
        schools, shelters, transport staff: role mandated_reporter, whose token names the
        organisation). 202 once durable; dispatch matches it against open cases. 422 names the
        field (`organisation_required` on `organisation` for an operator without one)."""
        answer, replayed = await intake.file(body, who, idempotency_key)
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse(answer, status_code=202, headers=headers)

    return router


def build_unidentified_page(ui: Path) -> APIRouter:
    """`GET /intake/unidentified`: the form (zh-CN first, English switch; scripts from
    /static/alert, no inline code: CSP-safe)."""
    pages = APIRouter(include_in_schema=False)

    @pages.get("/intake/unidentified")
    async def form() -> FileResponse:
        return FileResponse(ui / UI_PAGE, media_type="text/html; charset=utf-8")

    return pages
