"""The one exception hierarchy (shared/errors.py) and its one mapping to HTTP
(shared/web_errors.py): each kind answers with its status, code and field, whichever service
raised it."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.alert.domain import IntakeRefused
from services.dispatch.domain import Refused
from services.notify.errors import Conflict, Forbidden, NotFound
from shared import errors
from shared.web_errors import ApiError, install_error_handlers

CASES = [
    (NotFound(message="x"), 404, "not_found", None),
    (Forbidden(message="x"), 403, "forbidden", None),
    (Conflict(message="x"), 409, "conflict", None),
    (errors.InvalidInput(field="child.name"), 422, "invalid", "child.name"),
    (errors.Unavailable(headers={"Retry-After": "5"}), 503, "unavailable", None),
    (Refused(409, "case_closed", "case X is closed", "case_id"), 409, "case_closed", "case_id"),
    (IntakeRefused(422, "organisation_required", "organisation"), 422,
     "organisation_required", "organisation"),
    (ApiError(429, "rate_limited"), 429, "rate_limited", None),
    (errors.HomewardError(), 500, "internal_error", None),
]


@pytest.mark.parametrize(("error", "status", "code", "field"), CASES)
def test_every_kind_is_answered_once_with_its_status_code_and_field(
    error: errors.HomewardError, status: int, code: str, field: str | None
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    got = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert got.status_code == status
    body = got.json()["error"]
    assert body["code"] == code and body.get("field") == field and body["message"]
    if status == 503:
        assert got.headers["retry-after"] == "5"


def test_the_standard_bases_stay_so_existing_excepts_still_catch() -> None:
    assert isinstance(NotFound(), LookupError) and isinstance(Forbidden(), PermissionError)
    assert isinstance(Conflict(), ValueError) and isinstance(errors.InvalidInput(), ValueError)
    assert NotFound is errors.NotFound  # notify's kinds are the project's
