"""The alert API refuses bad input and missing rights before touching Kafka (no lifespan runs)."""

import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from services.alert.app import create_app
from services.alert.domain import new_case_id
from shared.auth import Role, mint_token
from shared.report import Report
from shared.settings import Settings
from tests.helpers import report_body


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(Settings()))


def bearer(role: Role, region: str = "140403") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(Settings(), role, region)}"}


def test_case_id_is_region_date_and_readable_suffix() -> None:
    report = Report.model_validate(report_body())
    case_id = new_case_id(report, datetime(2026, 11, 22, tzinfo=UTC))
    assert re.fullmatch(r"140403-20261122-[A-HJ-NP-Z2-9]{6}", case_id)


def test_missing_token_is_401(client: TestClient) -> None:
    response = client.post("/api/v1/reports", json=report_body())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_wrong_role_is_403(client: TestClient) -> None:
    response = client.post("/api/v1/reports", json=report_body(), headers=bearer(Role.hub))
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"child__sex": "boy"}, "child.sex"),
        ({"last_seen__region_code": "14040"}, "last_seen.region_code"),
        ({"last_seen__lat": 123.0}, "last_seen.lat"),
        ({"last_seen__at": "2026-11-22T09:30:00"}, "last_seen.at"),
        ({"circumstances__kind": "kidnap"}, "circumstances.kind"),
        ({"child__name": ""}, "child.name"),
    ],
)
def test_bad_report_is_422_naming_the_field(
    client: TestClient, override: dict[str, object], field: str
) -> None:
    response = client.post("/api/v1/reports", json=report_body(**override),
                           headers=bearer(Role.operator))
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


def test_missing_section_is_named(client: TestClient) -> None:
    body = report_body()
    del body["reporter"]
    response = client.post("/api/v1/reports", json=body, headers=bearer(Role.operator))
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "reporter"
