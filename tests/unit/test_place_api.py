"""Place refusals through the alert API: 422 bodies name the field the operator must correct
and say what to give instead (no lifespan runs here: refused before anything is stored)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.alert.app import create_app
from shared.auth import Role, mint_token
from shared.settings import Settings
from tests.helpers import report_body


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(Settings()))


def post(client: TestClient, last_seen: dict[str, Any], lang: str = "zh-CN") -> Any:
    body = report_body()
    body["last_seen"] = {"at": body["last_seen"]["at"], **last_seen}
    token = mint_token(Settings(), Role.operator, "140403")
    return client.post("/api/v1/reports", json=body,
                       headers={"Authorization": f"Bearer {token}", "Accept-Language": lang})


@pytest.mark.parametrize(
    ("last_seen", "code", "field", "words"),
    [
        ({"address": "天府新区华阳街道"}, "place_unresolved", "last_seen.region_code",
         ["区县", "天府新区", "510100 成都市", "511400 眉山市"]),
        ({"address": "昆山开发区"}, "place_unresolved", "last_seen.region_code", ["区县"]),
        ({"address": "朝阳区建国路"}, "place_unresolved", "last_seen.region_code",
         ["110105 北京市朝阳区", "220104 长春市朝阳区"]),
        ({"lat": -33.86, "lon": 151.21}, "place_unresolved", "last_seen.lat", ["区县"]),
        ({"region_code": "810000"}, "outside_mainland_jurisdiction", "last_seen.region_code",
         ["香港", "公安部", "协查"]),
        ({"address": "香港九龙弥敦道"}, "outside_mainland_jurisdiction", "last_seen.address",
         ["内地与港澳警务联络机制"]),
        ({"lat": 25.0777, "lon": 121.233}, "outside_mainland_jurisdiction", "last_seen.lat",
         ["海峡两岸共同打击犯罪及司法互助协议"]),
        ({"region_code": "140211"}, "region_code_split", "last_seen.region_code",
         ["南郊区", "2018", "140213 平城区", "140214 云冈区"]),
        ({"region_code": "140411"}, "region_code_retired", "last_seen.region_code",
         ["郊区", "2018", "现行代码"]),
        ({"region_code": "149999"}, "unknown_region", "last_seen.region_code", ["行政区划"]),
        ({"lat": 36.19, "lon": 113.11, "datum": "gcj"}, "invalid", "last_seen.datum",
         ["last_seen.datum"]),
    ],
)
def test_place_refusals_name_the_field(client: TestClient, last_seen: dict[str, Any],
                                       code: str, field: str, words: list[str]) -> None:
    response = post(client, last_seen)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    for word in words:
        assert word in error["message"], error["message"]


def test_refusals_in_english(client: TestClient) -> None:
    error = post(client, {"address": "天府新区华阳街道"}, lang="en").json()["error"]
    assert error["message"].startswith("the place cannot be resolved to a county")
    assert "天府新区" in error["message"]
    error = post(client, {"region_code": "820000"}, lang="en").json()["error"]
    assert "outside mainland jurisdiction" in error["message"]


def test_the_openapi_documents_datum_and_the_place_answer(client: TestClient) -> None:
    spec = client.app.openapi()  # served on the internal ops port (issue 12)
    schemas = spec["components"]["schemas"]
    last_seen = schemas["LastSeen"]["properties"]
    assert "datum" in last_seen and "wgs84" in str(last_seen["datum"]) + str(schemas["Datum"])
    assert "place" in schemas["ReportAnswer"]["properties"]
