"""Dispatch across the stack: an operator's report through alert forms the case group, a public
tip through alert is attached to it, and the commander's actions reach the live stream."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from deploy.local.stack import ServiceProcess
from shared.auth import Role
from tests.e2e.test_flow import stack, token  # noqa: F401  (the same stack fixture, per module)
from tests.helpers import eventually, report_body

pytestmark = pytest.mark.e2e


async def test_report_tip_and_commander_actions_across_the_stack(
    stack: dict[str, ServiceProcess],  # noqa: F811
) -> None:
    alert, dispatch = stack["alert"].url, stack["dispatch"].url
    commander = token(Role.commander, "140400")
    async with httpx.AsyncClient(timeout=15) as http:
        posted = await http.post(f"{alert}/api/v1/reports", headers=token(Role.operator, "140403"),
                                 json=report_body(child__name=f"童{uuid.uuid4().hex[:6]}",
                                                  reporter__phone="13698765432",
                                                  circumstances__kind="stolen"))
        assert posted.status_code == 202, posted.text
        case_id = posted.json()["case_id"]

        async def case() -> dict[str, object] | None:
            got = await http.get(f"{dispatch}/api/v1/cases/{case_id}", headers=commander)
            return got.json() if got.status_code == 200 else None

        opened = await eventually(case, timeout=30)
        assert opened["leader"]["organ_name"] == "长治市公安局"  # type: ignore[index]
        assert opened["supervision"] == "province"

        tip = await http.post(f"{alert}/api/v1/tips", json={
            "case_id": case_id, "seen_at": datetime.now(UTC).isoformat(),
            "location": {"lat": 36.2, "lon": 113.1, "address": "长治站"},
            "description": "候车室里看到一个穿蓝色羽绒服的男孩"})
        assert tip.status_code == 202, tip.text

        async def attached() -> dict[str, Any] | None:
            got = await http.get(f"{dispatch}/api/v1/cases/{case_id}/tips", headers=commander)
            page: dict[str, Any] = got.json()
            return page if got.status_code == 200 and page["items"] else None

        with_tip = await eventually(attached, timeout=30)
        assert with_tip["items"][0]["tip_id"] == tip.json()["tip_id"]

        async with http.stream("GET", f"{dispatch}/api/v1/stream",
                               headers={**commander, "Last-Event-ID": "0-0"}) as stream:
            found = await http.post(f"{dispatch}/api/v1/cases/{case_id}/found", headers=commander,
                                    json={"outcome": "found_safe",
                                          "found_at": datetime.now(UTC).isoformat()})
            assert found.status_code == 200
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    data = json.loads(line.removeprefix("data:").strip())
                    if data["case_id"] == case_id and data["type"] == "homeward.case.found.v1":
                        break
        closed = await http.post(f"{dispatch}/api/v1/cases/{case_id}/close", headers=commander,
                                 json={"reason": "平安找到"})
        assert closed.status_code == 200 and closed.json()["status"] == "closed"

        # The alert service learns of the closing from homeward.dispatch.v1: tips refused.
        async def refused() -> int | None:
            got = await http.post(f"{alert}/api/v1/tips", json={
                "case_id": case_id, "seen_at": datetime.now(UTC).isoformat(),
                "location": {"lat": 36.2, "lon": 113.1}, "description": "结案后的线索"})
            return got.status_code if got.status_code == 410 else None

        assert await eventually(refused, timeout=30) == 410
