"""Place answers through the running alert service (real Kafka and Redis): a conflicting
place and a retired region code are accepted, the 202 answer says how the report was placed,
and report.accepted carries it on to dispatch."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from services.alert.app import create_app
from shared import topics
from shared.auth import Role, mint_token
from shared.datum import Datum, from_wgs84
from shared.settings import Settings
from tests.helpers import eventually, read_topic, report_body


@asynccontextmanager
async def alert_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alert") as client:
            yield client


async def on_topic(settings: Settings, key: str) -> list[dict[str, Any]]:
    return [m for m in await read_topic(settings.kafka_bootstrap, topics.REPORTS)
            if m["key"] == key]


async def test_conflict_and_retired_code_are_accepted_and_answered(
    settings: Settings, tmp_path: Path
) -> None:
    operator = {"Authorization": f"Bearer {mint_token(Settings(), Role.operator, '140403')}"}
    taiyuan = from_wgs84(37.87, 112.55, Datum.gcj02)  # as 高德 shows a point in 太原
    conflicting = report_body(last_seen__region_code=None, last_seen__lat=taiyuan[0],
                              last_seen__lon=taiyuan[1])
    conflicting["last_seen"]["datum"] = "gcj02"
    retired = report_body(last_seen__region_code="140421", last_seen__address="",
                          last_seen__lat=None, last_seen__lon=None)
    async with alert_client(settings.model_copy(update={"data_dir": tmp_path})) as client:
        first = await client.post("/api/v1/reports", json=conflicting, headers=operator)
        second = await client.post("/api/v1/reports", json=retired, headers=operator)
        assert first.status_code == second.status_code == 202, (first.text, second.text)
        place = first.json()["place"]
        assert place["region_code"] == "140403" and place["datum"] == "wgs84"
        assert abs(place["lat"] - 37.87) < 1e-5 and abs(place["lon"] - 112.55) < 1e-5
        assert "datum" in place["derived"]
        assert place["conflict"]["chosen"] == "address"
        sources = {p["source"]: p for p in place["conflict"]["parts"]}
        assert sources["coordinates"]["region_code"].startswith("1401")
        replaced = second.json()["place"]["region_code_replaced"]
        assert (replaced["given"], replaced["region_code"], replaced["year"]) == (
            "140421", "140404", 2018)
        status = await client.get(f"/api/v1/reports/{second.json()['report_id']}",
                                  headers=operator)
        assert status.json()["place"]["region_code"] == "140404"

    [message] = await eventually(lambda: on_topic(settings, first.json()["case_id"]))
    value = message["value"]
    assert value["place_conflict"]["region_code"] == "140403"
    assert value["report"]["last_seen"]["datum"] == "wgs84"
    [message] = await eventually(lambda: on_topic(settings, second.json()["case_id"]))
    assert message["value"]["report"]["last_seen"]["region_code"] == "140404"
    assert message["value"]["region_code_replaced"]["given_name"] == "长治县"
    assert second.json()["case_id"].startswith("140404-")
