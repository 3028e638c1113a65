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
from pydantic import BaseModel, Field, field_validator

from services.dispatch.rules import LEVELS, Level
from shared.phones import stored_phone
from shared.regions import Region, RegionIndex, region_index

DEFAULT_ROSTER = Path(__file__).with_name("roster.yaml")
DUTIES = ("investigation", "rescue", "family_liaison")
Post = Literal["head", "deputy"]


class Person(BaseModel):
    name: str
    title: str
    phone: str = Field(default="", description="E.164 when it is a number (shared.phones); a "
                       "generated placeholder is kept as it is and never dialled")
    available: bool = True

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return stored_phone(value) if value else value


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


# Areas outside mainland public security (香港, 澳门, 台湾): no organ is generated for them —
# a case there is handled by cross-border liaison, never by an invented bureau.
OUTSIDE_MAINLAND = ("71", "81", "82")
# Where the real organ's name departs from the rule of its kind (the roster file can override
# any other): 上海市公安局浦东分局 and 天津市公安局滨海分局 drop 新区.
NAME_EXCEPTIONS = {"310115": "上海市公安局浦东分局", "120116": "天津市公安局滨海分局"}


def _district_stem(name: str) -> str:
    """What a 市辖区's 分局 is named after: the name without 区 (潞州区 → 潞州), except where
    区 is part of the kind — 新区 (两江新区), 矿区 (井陉矿区) — or the stem would be one
    character (城区, 郊区, 东区)."""
    if name.endswith("新区") and len(name) > 3:  # 清新区 is 清新 + 区
        return name
    if name.endswith("矿区") or len(name) <= 2:
        return name
    return name[:-1]


def organ_name(region: Region, regions: RegionIndex) -> str | None:
    """The public security organ of a division, by its kind (公安机关组织管理条例, and the
    organs' own names):

    - province 省/自治区: 山西省公安厅, 内蒙古自治区公安厅; municipality: 北京市公安局;
    - prefecture 市/自治州: 长治市公安局, 博尔塔拉蒙古自治州公安局; 地区/盟: 阿里地区公安处,
      兴安盟公安处;
    - county 县/自治县/旗/自治旗/县级市/特区, and anything under a province directly (林区,
      省直辖县级市): 平顺县公安局, 六枝特区公安局, 神农架林区公安局, 仙桃市公安局;
    - 市辖区: a 分局 of its city's bureau, 长治市公安局潞州分局, 重庆市公安局两江新区分局,
      石家庄市公安局井陉矿区分局, 阳泉市公安局城区分局;
    - 香港, 澳门, 台湾: None.
    """
    if region.code.startswith(OUTSIDE_MAINLAND):
        return None
    if region.code in NAME_EXCEPTIONS:
        return NAME_EXCEPTIONS[region.code]
    if region.level == "province":
        municipality = region.name.endswith("市")
        return f"{region.name}公安局" if municipality else f"{region.name}公安厅"
    if region.level == "prefecture":
        return f"{region.name}公安处" if region.name.endswith(("地区", "盟")) else (
            f"{region.name}公安局")
    parent = regions.get(region.parent) if region.parent else None
    under_city = parent is not None and (parent.level == "prefecture" or parent.name.endswith(
        "市"))
    is_district = region.name.endswith("区") and not region.name.endswith("特区")
    if is_district and under_city and parent is not None:
        city_bureau = f"{parent.name}公安局"
        return f"{city_bureau}{_district_stem(region.name)}分局"
    return f"{region.name}公安局"


def generated_organ(region: Region, regions: RegionIndex) -> Organ | None:
    """A placeholder organ for a division; None where no mainland organ exists."""
    name = organ_name(region, regions)
    if name is None:
        return None
    level: Level = "county" if region.level == "county" else region.level
    if region.level == "province" and region.name.endswith("市"):
        titles = _TITLES["prefecture"]  # a municipality's bureau is a 公安局 with a 局长
    else:
        titles = _TITLES[level]
    head, deputy, *duty_titles = titles
    return Organ(
        code=region.code, name=name, level=level, placeholder=True,
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
                if cached is None:
                    return None
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
