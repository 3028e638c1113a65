"""The roster of public security organs: one per province, prefecture and county, generated from
the region data with placeholder people, overridden organ by organ by a roster file that a real
deployment supplies (settings.roster_file; the default file names a few real organs).

一长三包 (002 §三㈠): the head, or the responsible deputy when the head is unavailable, of the
organ of county level or above leads the case group; investigation, rescue and family liaison
each have a named member. Pure apart from `load_roster`, which reads the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field

from services.dispatch.rules import LEVELS, Level
from shared.regions import Region, RegionIndex, region_index

DEFAULT_ROSTER = Path(__file__).with_name("roster.yaml")
DUTIES = ("investigation", "rescue", "family_liaison")
Post = Literal["head", "deputy"]


class Person(BaseModel):
    name: str
    title: str
    phone: str = ""
    available: bool = True


class Organ(BaseModel):
    code: str
    name: str
    level: Level = "county"
    head: Person
    deputy: Person
    members: dict[str, Person]
    placeholder: bool = Field(default=False, description="generated, not from the roster file")


_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
_GIVEN = ("建国", "志强", "海涛", "丽萍", "文斌", "国庆", "晓燕", "春华", "卫东", "明辉", "秀英",
          "立新", "振华", "建平", "永刚", "红梅", "晓军", "淑芬", "正阳", "明远", "玉兰", "德胜")
_TITLES: dict[str, tuple[str, str, str, str, str]] = {
    # head, deputy, investigation, rescue, family liaison
    "province": ("厅长", "副厅长", "刑侦总队长", "打拐办主任", "群众工作处处长"),
    "prefecture": ("局长", "副局长", "刑侦支队长", "打拐大队长", "警务保障处处长"),
    "county": ("局长", "副局长", "刑侦大队长", "打拐中队长", "派出所教导员"),
}


def _placeholder(code: str, post: str, title: str, n: int) -> Person:
    digest = hashlib.sha256(f"{code}:{post}".encode()).digest()
    name = _SURNAMES[digest[0] % len(_SURNAMES)] + _GIVEN[digest[1] % len(_GIVEN)]
    return Person(name=name, title=title, phone=f"0000-{code}-{n:02d}")


def organ_name(region: Region, regions: RegionIndex) -> str:
    """长治市公安局潞州分局, 平顺县公安局, 长治市公安局, 山西省公安厅, 北京市公安局."""
    if region.level == "province":
        municipality = region.name.endswith("市")
        return f"{region.name}公安局" if municipality else f"{region.name}公安厅"
    if region.level == "prefecture":
        return f"{region.name}公安局"
    parent = regions.get(region.parent) if region.parent else None
    if region.name.endswith("区") and len(region.name) > 2 and parent is not None:
        return f"{parent.name}公安局{region.name[:-1]}分局"
    return f"{region.name}公安局"


def generated_organ(region: Region, regions: RegionIndex) -> Organ:
    level: Level = "county" if region.level == "county" else region.level
    if region.level == "province" and region.name.endswith("市"):
        titles = _TITLES["prefecture"]  # a municipality's bureau is a 公安局 with a 局长
    else:
        titles = _TITLES[level]
    head, deputy, *duty_titles = titles
    return Organ(
        code=region.code, name=organ_name(region, regions), level=level, placeholder=True,
        head=_placeholder(region.code, "head", head, 1),
        deputy=_placeholder(region.code, "deputy", deputy, 2),
        members={duty: _placeholder(region.code, duty, title, 3 + i)
                 for i, (duty, title) in enumerate(zip(DUTIES, duty_titles, strict=True))},
    )


class Roster:
    """Organs by region code: the roster file's, else generated; availability applied."""

    def __init__(self, overrides: dict[str, Organ], regions: RegionIndex | None = None) -> None:
        self.regions = regions or region_index()
        self.overrides = overrides
        self.availability: dict[tuple[str, str], bool] = {}
        self._cache: dict[str, Organ] = {}

    def organ(self, code: str) -> Organ | None:
        cached = self._cache.get(code)
        if cached is None:
            if code in self.overrides:
                cached = self.overrides[code]
                region = self.regions.get(code)
                if region is not None and "level" not in cached.model_fields_set:
                    cached = cached.model_copy(update={"level": region.level})
            else:
                region = self.regions.get(code)
                if region is None:
                    return None
                cached = generated_organ(region, self.regions)
            self._cache[code] = cached
        return self._with_availability(cached)

    def _with_availability(self, organ: Organ) -> Organ:
        updates = {}
        for post in ("head", "deputy"):
            known = self.availability.get((organ.code, post))
            if known is not None:
                person: Person = getattr(organ, post)
                updates[post] = person.model_copy(update={"available": known})
        return organ.model_copy(update=updates) if updates else organ

    def set_available(self, code: str, post: Post, available: bool) -> None:
        self.availability[(code, post)] = available

    def organ_at(self, region_code: str, level: Level) -> Organ | None:
        """The organ of `level` over `region_code` (its own, its prefecture's, its province's);
        a level missing in the region tree (a municipality has no prefecture) takes the next
        one up."""
        chain = {r.level: r.code for r in self.regions.chain(region_code)}
        if not chain and region_code in self.overrides:
            return self.organ(region_code)
        for candidate in LEVELS[LEVELS.index(level):]:
            code = chain.get(candidate)
            if code is not None:
                found = self.organ(code)
                if found is not None:
                    return found
        return None

    def parent_of(self, organ: Organ) -> Organ | None:
        region = self.regions.get(organ.code)
        if region is None or region.parent is None:
            return None
        return self.organ(region.parent)


def load_roster(path: Path | None = None, regions: RegionIndex | None = None) -> Roster:
    raw = yaml.safe_load((path or DEFAULT_ROSTER).read_text(encoding="utf-8"))
    organs = {str(code): Organ.model_validate({"code": str(code), **organ})
              for code, organ in (raw.get("organs") or {}).items()}
    return Roster(organs, regions)
