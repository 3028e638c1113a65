"""Redis-backed case state (derived; rebuilt from homeward.dispatch.v1) and the roster file."""

from __future__ import annotations

from pathlib import Path

import yaml
from redis.asyncio import Redis

from services.dispatch.domain import Case, Roster

DEFAULT_ROSTER = Path(__file__).with_name("roster.yaml")


def load_roster(path: Path | None = None) -> Roster:
    raw = yaml.safe_load((path or DEFAULT_ROSTER).read_text(encoding="utf-8"))
    organs = {code: {"code": code, **organ} for code, organ in raw["organs"].items()}
    return Roster.model_validate({"organs": organs})


class CaseRepository:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, case_id: str) -> Case | None:
        raw = await self.redis.get(f"dispatch:case:{case_id}")
        return Case.model_validate_json(raw) if raw else None

    async def add(self, case: Case) -> bool:
        """Store a new case; False when it exists already (a redelivered report)."""
        created = await self.redis.set(f"dispatch:case:{case.case_id}",
                                       case.model_dump_json(), nx=True)
        # Indexed even when the case existed: a crash between the two writes heals on redelivery.
        await self.redis.zadd("dispatch:cases", {case.case_id: case.opened_at.timestamp()})
        return bool(created)

    async def list_ids(self, limit: int = 200) -> list[str]:
        ids = await self.redis.zrevrange("dispatch:cases", 0, limit - 1)
        return [str(i) for i in ids]
