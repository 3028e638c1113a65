"""What a free-text address names: the official, short and former names of regions found in it
and scored against each other, and the development zones or new areas it names (no divisions,
see shared.zones). Used by shared.regions.RegionIndex.parse_address."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.names import short_name
from shared.region_codes import within
from shared.zones import Span, Zone, fold, kind_spans, zone_keys

if TYPE_CHECKING:
    from shared.regions import Region

__all__ = ["AddressMatch", "AddressParser"]

# How a name variant found in an address counts: full official name > former name > short name.
_FULL, _ALIAS, _SHORT = 1.0, 0.5, 0.0
# Former names this short ending in 区 are generic words (新区, 城区, 郊区, 矿区): they name a
# place only together with its prefecture or province (丰润区 was 唐山's 新区; 成都高新区 is not
# in Hebei).
_GENERIC_ALIAS_LEN = 2
# What follows a short or former name that names a road after it, not the region (上海乌鲁木齐中路,
# 广州北京路, 天津南京道, 南京中山路, 青岛台东步行街): an optional direction and number, then a
# road word. A single 街 or 道 only where the word ends there (沈阳太原街, but 崇州街子镇 and 东莞
# 道滘 are towns of those cities).
_ROAD = re.compile(r"[东西南北中]?(?:[一二三四五六七八九十]+|\d+)?"
                   r"(?:步行街|大街|大道|胡同|路|巷|弄|[街道](?=$|[\d\s号,，、;；(（]))")
# ... or a town or village after another region's name (东莞沙田镇 is a town of 东莞, not 香港
# 沙田), where the word ends there (湖南乡下, 武进村前 are not). Alone, the township list decides
# (太平镇 is no 阜新 太平区, 兰陵镇 is in 兰陵县: `_town_named_after`).
_TOWN = re.compile(r"[镇乡村](?=$|[\d\s号,，、;；(（]|[^\u4e00-\u9fff])")
# The last character of every township name kept (镇, 乡, 街道, 苏木).
_TOWNSHIP_LAST = frozenset("镇乡道木")
# Words for a kind of town that end many names not in the list (西江古镇, 安亭新镇, 特色小镇):
# a township's name ending so counts only where a word begins.
_TOWN_WORDS = ("古镇", "新镇", "小镇")
# 街道 is also the everyday word for a street: a name ending so that describes a part of any
# city (鸡西市中心街道, 杭州城南街道, 大连火车站前街道) places nothing, and none is a township
# where 街道 goes on as a street (街道上, 街道边, 街道口: 周口 阳光花园 街道边).
_GENERIC_STREETS = frozenset({
    "中心", "城中", "城区", "市中", "城关", "老城", "古城", "新城", "城南", "城北", "城东", "城西",
    "站前", "车站", "花园", "新村", "东门", "西门", "南门", "北门", "中街"})
_ON_A_STREET = re.compile(r"[上边口旁里内外]")
# What after a name ending in 乡 makes a word of it, not a township (shared/data/townships.json):
# 湖南乡下 is rural 湖南, not 临川's 湖南乡; 河南乡镇 are 河南's townships.
_NOT_TOWNSHIP = re.compile(r"[下村镇]")
# At most this many counties with a township of the name found make an ambiguous answer
# (the caller asks); more (城关镇: 88, 太平镇: 50) say nothing.
_TOWNSHIP_CANDIDATES = 8
# Between a larger region's name and a county's name right after it: nothing, or separators
# (the 市 of "台北市大安区" when the name found is 台北).
_ADJACENT = re.compile(r"[省市]?[\s,，、·]*")
# The four municipalities: province-level, but one city each (上海安亭镇 is placed by its town).
_MUNICIPALITIES = frozenset({"110000", "120000", "310000", "500000"})
# Outside mainland jurisdiction (香港, 澳门, 台湾): their place names are common names of mainland
# towns and streets too (珠海湾仔, 南京元朗, 河北新北).
_OUTSIDE_MAINLAND = ("71", "81", "82")


def _is_cjk(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


def _word_breaks(text: str, folded: str) -> frozenset[int]:
    """Where the caller's whitespace stood, as positions in `folded` (fold drops it): no
    township's name is read across one. Empty when folding the parts apart gives another
    text (a zone word written across a space)."""
    parts = [fold(p) for p in text.split()]
    if "".join(parts) != folded:
        return frozenset()
    breaks, at = set(), 0
    for p in parts[:-1]:
        at += len(p)
        breaks.add(at)
    return frozenset(breaks)


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """What an address names. `region` is the deepest region it pins down (None when it
    names none, or names several unrelated ones: `candidates` then lists them); `zone` is a
    development zone or new area named in it, which is no division (see shared.zones)."""

    region: Region | None
    zone: str | None = None
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Township:
    """A township's name found in an address, text[start:end], and the counties that have
    a township of that name."""

    start: int
    end: int
    counties: tuple[str, ...]
    name: str = ""


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    weight: float
    generic: bool = False
    full: bool = False


class AddressParser:
    """The names of `regions` (by code) and their former names (`aliases`: (former name,
    code)), the `zones` whose hosts are all known and the `townships` (name -> the codes of
    the counties that have one of that name), indexed for scanning addresses; `chain(code)`
    is the region then its ancestors (RegionIndex.chain)."""

    def __init__(self, regions: Mapping[str, Region], aliases: Iterable[tuple[str, str]],
                 zones: Iterable[Zone], chain: Callable[[str], list[Region]],
                 townships: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self._by_code = regions
        self._chain = chain
        provinces = [n for r in regions.values() if r.level == "province"
                     for n in (r.name, short_name(r.name)) if n]
        self._zones: dict[str, Zone] = {}
        for z in zones:
            if all(h in regions for h in z.hosts):
                for key in zone_keys(z.name, provinces):
                    self._zones.setdefault(key, z)
        self._max_zone = max((len(k) for k in self._zones), default=0)
        # Every beginning of a zone key (3 characters on): a scan stops extending a piece of
        # text as soon as no key begins with it (issue 15: the intake profile).
        self._zone_prefixes = {k[:n] for k in self._zones for n in range(3, len(k) + 1)}
        self._names: dict[str, list[tuple[str, float]]] = {}
        for r in regions.values():
            self._add_name(r.name, r.code, _FULL)
            if (short := short_name(r.name)) is not None:
                self._add_name(short, r.code, _SHORT)
        for former, code in aliases:
            if code in regions:
                self._add_name(former, code, _ALIAS)
        self._max_name = max(len(n) for n in self._names)
        self._name_prefixes = {n[:k] for n in self._names for k in range(2, len(n) + 1)}
        self._townships = {name: tuple(c for c in codes if c in regions)
                           for name, codes in (townships or {}).items()}
        self._max_township = max((len(n) for n in self._townships), default=0)

    def _add_name(self, name: str, code: str, weight: float) -> None:
        entries = self._names.setdefault(name, [])
        if (code, weight) not in entries:
            entries.append((code, weight))

    def zone(self, name: str) -> Zone | None:
        """A development zone or new area known from data, by any of its spellings."""
        return self._zones.get(fold(name))

    def parse(self, text: str, inside: str | None = None) -> AddressMatch:
        """What an address names; the rules are those of RegionIndex.parse_address."""
        folded = fold(text)
        kinds = kind_spans(folded)
        found = self._scan_names(folded)
        townships = self._township_hits(folded, found, _word_breaks(text, folded))
        contested: list[tuple[str, int, int]] = []
        hits = self._name_hits(folded, kinds, found, townships, contested)
        zone_hits = self._zone_hits(folded)
        region, candidates = self._best(hits, folded)
        region, candidates = self._unless_a_town(region, candidates, hits, townships, contested)
        zone = None
        if zone_hits:
            zone = max(zone_hits, key=lambda z: len(z.name)).name
            region, candidates = self._within_zone(region, zone_hits)
        else:
            chosen = self._inside(inside, region, candidates, townships, hits, contested)
            region, candidates = self._by_township(region, candidates, townships, hits,
                                                   [c for c, _, _ in contested])
            if chosen is not None and (region is None or region.level != "county"):
                region, candidates = self._by_code[chosen], ()
        kinds = [k for k in kinds  # 浦东新区 is a division, not a zone
                 if not any(h.full and k.within(h.start, h.end) for hs in hits.values()
                            for h in hs)]
        if not zone_hits and kinds:
            k = kinds[0]
            stem = folded[max(0, k.start - 4):k.start]
            cut = max(stem.rfind(c) for c in "省市州盟区县旗路街道号")
            zone = stem[cut + 1:] + folded[k.start:k.end]
        return AddressMatch(region, zone, candidates)

    def _inside(self, inside: str | None, region: Region | None, candidates: tuple[str, ...],
                townships: list[_Township], hits: dict[str, list[_Hit]],
                contested: list[tuple[str, int, int]]) -> str | None:
        """The county that the caller's region (`inside`: the one the operator picked) points
        at, read as if written in front, when the text's own names (`region`, `candidates`,
        before any township) name nothing beside it (a place named there stays, and intake
        shows the conflict: 东莞长安镇 with 浙江 picked is 东莞): the one county inside it
        that the townships named point at (region 成都 + 街子镇 -> 崇州; region 崇州 + 街子镇
        stays 崇州; region 东莞 + 长安镇 -> 东莞); when no town of that name is inside it, the
        one county inside it whose name the town's begins with (region 德阳 + 罗江镇 -> 罗江区;
        but region 兰州 + 城关镇 is no 城关区: 永登 and 榆中 have one)."""
        known = self._by_code.get(inside) if inside else None
        if known is None or (region is not None and not within(region.code, known.code)
                             and not self._province_alone(region.code, hits)) or any(
                not (within(c, known.code) or within(known.code, c)) and c in hits
                and not self._province_alone(c, hits) for c in candidates):
            return None  # what the text names stays (intake shows a conflict), unless it is
            # a province alone (长安镇 广西人 with 东莞 picked: 东莞's 长安镇)
        usable = self._usable([known.code], townships, hits)  # a province picked counts
        chosen = self._one_county([known.code], usable)
        if chosen is None and not any(within(known.code, c) for t in townships
                                      for c in t.counties):
            # no town of that name inside it: the county whose name the town's begins with
            near = {c for c, _, _ in contested if within(known.code, c)}
            chosen = near.pop() if len(near) == 1 else None
        return chosen

    def _unless_a_town(self, region: Region | None, candidates: tuple[str, ...],
                       hits: dict[str, list[_Hit]], townships: list[_Township],
                       contested: list[tuple[str, int, int]]
                       ) -> tuple[Region | None, tuple[str, ...]]:
        """No answer where the region won only by a name that also begins a town's: a city
        left because its counties' names were read as a town's (朝阳镇: 朝阳市, 北京 朝阳区 …;
        西安镇, 中山镇), or a county whose every mention begins a town's name that other
        counties have too (平山镇: 平山县's seat, and a 平山镇 elsewhere). With an ancestor of
        the region named, the region stands (辽宁朝阳镇, 河北平山镇)."""
        if region is None or any(a.code in hits for a in self._chain(region.code)[1:]):
            return region, candidates
        code = region.code
        spans = {(h.start, h.end) for h in hits.get(code, ())}
        elsewhere = self._town_elsewhere(code, spans, townships,
                                         self._province_alone(code, hits))
        if elsewhere is not None:
            return None, elsewhere
        if region.level != "county":
            rivals = {c for c, i, j in contested if (i, j) in spans}
            return (None, tuple(sorted({code, *rivals}))) if rivals else (region, candidates)
        heads = [[t.counties for t in townships if t.start == h.start and h.end < t.end
                  and len(t.counties) > 1] for h in hits[code]]
        if not all(heads):  # a mention of it that begins no such town's name
            return region, candidates
        shared = heads[0][0]
        return None, shared if len(shared) <= _TOWNSHIP_CANDIDATES else ()

    def _town_elsewhere(self, code: str, spans: set[tuple[int, int]],
                        townships: list[_Township],
                        province_alone: bool = False) -> tuple[str, ...] | None:
        """The candidates when the text also names a town that lies outside the region its
        own name alone made (兰州拉面 太和镇: a shop's 兰州 and a 太和镇 that is in none of
        兰州's counties; 长白山 二道白河镇: 白山's name inside 长白山, and a town of 安图): the
        region and the counties that have the town (up to _TOWNSHIP_CANDIDATES), else the
        region alone. Not for a town holding the region's own name (南京镇江路, 银川镇北堡)
        nor a one-character one (嘉兴乌镇: the list has 佳县's 乌镇 only). A province named
        alone agrees only with a town all of whose namesakes it holds (新疆来的，在双城镇走丢
        asks: 阿拉尔 and 哈尔滨 have one)."""
        towns = [t for t in townships if t.end - t.start > 2
                 and not any(t.start <= b and e <= t.end for b, e in spans)]
        agrees = all if province_alone else any  # 新疆来的，在双城镇走丢: 哈尔滨 has one too
        if not towns or agrees(within(code, c) or within(c, code)
                               for t in towns for c in t.counties):
            return None  # no such town, or one that agrees with the region
        counties = towns[0].counties if len(towns[0].counties) <= _TOWNSHIP_CANDIDATES else ()
        return tuple(sorted({code, *counties}))

    def _township_hits(self, text: str, found: list[tuple[str, float, int, int]],
                       breaks: frozenset[int] = frozenset()) -> list[_Township]:
        """The townships named in `text`, left to right: at each township word (镇, 乡,
        街道, 苏木) the longest name ending there, not across a space the caller typed
        (`breaks`: 大竹 镇上 is 大竹), that does not begin inside a region's name found
        (淮北市东街道 is 东街道, 湖南安乡 holds no 南安乡, 侯马路东街道 no 马路东街道), unless
        that name is itself read across another (上海安亭镇: 海安 is no name there); one
        inside another does not count (北太平镇 holds 太平镇). A name of one character before
        its township word counts only right after a region's name (桐乡乌镇; alone, 乌镇 is
        the famous 乌镇镇 of 桐乡 more often than 陕西 佳县's 乌镇; 安亭新镇 holds no 新镇)."""
        towns: list[_Township] = []
        for end in range(2, len(text) + 1):
            if text[end - 1] not in _TOWNSHIP_LAST:
                continue
            if text[end - 1] == "乡" and _NOT_TOWNSHIP.match(text, end):
                continue
            if text.endswith("街道", 0, end) and _ON_A_STREET.match(text, end):
                continue
            for start in range(max(0, end - self._max_township), end - 1):  # longest first
                name = text[start:end]
                if any(start < b < end for b in breaks):
                    continue  # across a space the caller typed (大竹 镇上 is 大竹, not 大竹镇)
                counties = self._townships.get(name)
                if counties is None or any(
                        b < start < e and not any(b2 < b < e2 for _, _, b2, e2 in found)
                        and not (start == e - 1 and text[start] in "市县区"
                                 and any(within(code, c) for c in counties))
                        for code, _, b, e in found):
                    continue  # inside a name (湖南安乡), not one read across two (上海安亭镇),
                    # nor from the 市 of a city that has that town (滨州市东街道: 市东街道)
                stem = len(name) - (2 if name.endswith(("街道", "苏木")) else 1)
                after_name = any(e == start for _, _, _, e in found)
                if stem < 2 and not after_name:
                    continue
                if name.endswith(_TOWN_WORDS) and start and _is_cjk(text[start - 1]) \
                        and not after_name:
                    continue  # the tail of a longer name (西江古镇 holds no 江古镇)
                towns.append(_Township(start, end, counties, name))
                break
        return [t for t in towns if not any(
            o is not t and o.start <= t.start and t.end <= o.end for o in towns)]

    def _town_named_after(self, text: str, code: str, i: int, j: int,
                          townships: list[_Township],
                          found: list[tuple[str, float, int, int]]) -> bool:
        """`text[i:j]`, a region's short or former name, is read as part of a township's
        longer name, not as the region, when no township of that name lies in the region:
        - a county's name (or a place's of 香港/澳门/台湾) anywhere in it (太平镇 is no 阜新
          太平区, 吕梁中阳楼街道 no 中阳县, 桃园街道 no 台湾; 兰陵镇 is in 兰陵县);
        - any region's name inside it after its first character (歌乐山街道 is no 乐山, 沙河源
          街道 no 河源, 毛山东乡 no 山东);
        - a prefecture's or province's name that begins it, when more than a township word
          follows the name in the township's (南阳新村街道 is no 南阳), or the township ends
          the text or a part of it (九江镇 and 三沙镇 alone); not before a place beginning with
          镇 (银川镇北堡 is 银川, 太原镇城底 太原).
        Unless one of the region's ancestors is named, no other place is and no township of that
        name lies below that ancestor (河北馆陶镇 is 馆陶县)."""
        holding = [t for t in townships if t.start <= i and j <= t.end and t.end - t.start > j - i]
        if not holding:
            return False
        county = self._by_code[code].level == "county" or code.startswith(_OUTSIDE_MAINLAND)
        named = {c for c, _, _, _ in found} & {a.code for a in self._chain(code)[1:]}
        for t in holding:
            if any(within(code, c) for c in t.counties):
                continue
            stem_end = t.end - (2 if text.endswith(("街道", "苏木"), 0, t.end) else 1)
            if not (county or t.start < i or j < stem_end or t.end == len(text)
                    or not _is_cjk(text[t.end])):
                continue
            if self._stands(code, i, j, found) and not any(
                    within(a, c) for a in named for c in t.counties):
                continue
            return True
        return False

    def _by_township(self, region: Region | None, candidates: tuple[str, ...],
                     townships: list[_Township], hits: dict[str, list[_Hit]],
                     contested: Iterable[str] = ()) -> tuple[Region | None, tuple[str, ...]]:
        """A township named below what the rest of the address pins down (a prefecture, a
        municipality, a province with names below it, or several candidates) places it in the
        one county there that has a township of that name (江苏鼓楼区湖南路街道 is 南京's
        鼓楼区; 东莞长安镇 stays 东莞) —
        when every township named that fits there agrees (成都 家住安仁镇 在街子镇走丢 stays
        成都); not by a township whose name holds every name that made the region or the
        candidates (大同镇 does not choose between 大同市 and 大庆 大同区), nor by one that
        another place named has too (新疆伊宁北京路街道的，在乌鲁木齐走丢: 伊宁 has one); and
        candidates are narrowed only when one name made them all (鼓楼区湖南路街道), not when
        the text names two places (成都人 家住安仁镇，孩子在重庆走丢 stays ambiguous).
        With no region named at all, the counties that have it are candidates, up to
        _TOWNSHIP_CANDIDATES with the `contested` counties whose name it begins with (安亭镇:
        上海 嘉定区; 平昌镇龙: 平昌县 and 信阳 平桥区, which has a 平昌镇), never the answer:
        the list is of 2023 and misses former and popular names (乌镇 is officially 乌镇镇; a
        乌镇 is in 陕西 佳县), so the caller confirms. More say nothing (太平镇: 50). A county
        already named is never moved."""
        if region is not None and region.level == "county":
            return region, candidates
        if region is None and not candidates:
            for t in townships:
                named = sorted({*t.counties, *contested})
                if len(named) <= _TOWNSHIP_CANDIDATES:
                    return None, tuple(named)
            return None, ()
        areas = [region.code] if region is not None else [c for c in candidates if c in hits]
        spans = {(h.start, h.end) for c in areas for h in hits.get(c, ())}
        if region is None and any(e1 <= b2 for b1, e1 in spans for b2, e2 in spans):
            return region, candidates  # two places named (成都人 家住安仁镇 在重庆走丢): ask
        chosen = self._one_county(areas, self._usable(areas, townships, hits))
        if chosen is None or any(within(a, chosen) and self._province_alone(a, hits)
                                 for a in areas):
            return region, candidates  # a province alone is often where someone is from
        return self._by_code[chosen], ()

    def _usable(self, areas: list[str], townships: list[_Township],
                hits: dict[str, list[_Hit]]) -> list[_Township]:
        """The townships that may place the address within `areas`: none when the text names
        two places apart below one area (湖南衡阳南京镇人，在长沙走丢: 湖南, not 衡阳's town);
        else those not holding every name that made the areas, and none that another place
        named has too (新疆伊宁北京路街道的，在乌鲁木齐走丢: 伊宁 has one), a province named
        alone aside (an origin: 长安镇 广西人), and none named by a city's generic part
        (_GENERIC_STREETS: 鸡西市中心街道)."""
        if any(self._two_places_below(a, hits) for a in areas):
            return []
        used = [(h.start, h.end) for code in areas for h in hits.get(code, ())]
        others = [c for c in hits if not any(within(a, c) or within(c, a) for a in areas)
                  and not self._province_alone(c, hits)]
        return [t for t in townships
                if not (used and all(t.start <= b and e <= t.end for b, e in used))
                and not any(within(o, c) for o in others for c in t.counties)
                and not (t.name.endswith("街道") and t.name[:-2] in _GENERIC_STREETS)]

    @staticmethod
    def _two_places_below(code: str, hits: dict[str, list[_Hit]]) -> bool:
        """The text names two places below `code`, apart in the text and neither inside the
        other (衡阳 and 长沙 below 湖南); one name read as two places (鼓楼区: 南京's and
        徐州's) is not two."""
        below = [(c, h.start, h.end) for c, hs in hits.items() if c != code and within(code, c)
                 for h in hs]
        return any(e1 <= b2 and not within(c1, c2) and not within(c2, c1)
                   for c1, b1, e1 in below for c2, b2, e2 in below)

    def _province_alone(self, code: str, hits: dict[str, list[_Hit]]) -> bool:
        """`code` is a province (not one of the four municipalities, which are cities) with
        nothing named below it: a town does not pin a county there (长安镇 广西人 is no
        广西 融安县's 长安镇; 吉林's 吉林市 is the same word; 江苏鼓楼区湖南路街道 names
        counties below 江苏), not even a county directly under it (海南人，在长征镇走丢 is no
        琼中: 上海 has a 长征镇 too)."""
        own = {(h.start, h.end) for h in hits.get(code, ())}
        return (self._by_code[code].level == "province" and code not in _MUNICIPALITIES
                and not any(c != code and within(code, c) and (h.start, h.end) not in own
                            for c, hs in hits.items() for h in hs))

    def _one_county(self, areas: list[str], townships: list[_Township]) -> str | None:
        """The one county within `areas` that every township named there points at, if any."""
        fits = [[c for c in t.counties if any(within(a, c) for a in areas)] for t in townships]
        found = {f[0] for f in fits if len(f) == 1}
        if len(found) == 1 and all(len(f) <= 1 for f in fits):
            return found.pop()
        return None

    def _scan_names(self, text: str) -> list[tuple[str, float, int, int]]:
        """Every (code, weight, start, end) of a region's name found in `text`."""
        found: list[tuple[str, float, int, int]] = []
        for i in range(len(text)):
            for j in range(i + 2, min(len(text), i + self._max_name) + 1):
                piece = text[i:j]
                if piece not in self._name_prefixes:
                    break  # no name begins so: none is longer either
                found.extend((code, bonus, i, j)
                             for code, bonus in self._names.get(piece, ()))
        return found

    def _name_hits(self, text: str, kinds: list[Span], found: list[tuple[str, float, int, int]],
                   townships: list[_Township],
                   contested: list[tuple[str, int, int]]) -> dict[str, list[_Hit]]:
        """The names that nominate their region, by code; the counties whose name was read as
        a town's go to `contested` (code, start, end)."""
        # A zone's own name: a county's short or former name right before a kind word (江北 in
        # 江北新区, 清水河 in 清水河高新区), with every name partly inside it (清水 and 九龙 in
        # 清水河/九龙坡, 清新区 in 武清新区).
        own = [Span(i, j) for code, bonus, i, j in found
               if bonus != _FULL and self._by_code[code].level == "county"
               and any(j == k.start for k in kinds)]
        starts = {i for _, _, i, _ in found}
        hits: dict[str, list[_Hit]] = {}
        for code, bonus, i, j in found:
            if not self._kept(code, bonus, i, j, kinds, own):
                continue
            if bonus != _FULL and j not in starts and (_ROAD.match(text, j) or (
                    _TOWN.match(text, j) and any(e <= i for _, _, _, e in found))) \
                    and not self._stands(code, i, j, found):
                continue  # a road's or a town's name, not the region's
            if bonus != _FULL and code.startswith(_OUTSIDE_MAINLAND) and any(
                    b < i < e and not c.startswith(_OUTSIDE_MAINLAND) for c, _, b, e in found):
                continue  # begins inside a mainland name (丰台南苑: no 台南; 邢台北: no 台北)
            if bonus != _FULL and code.startswith(_OUTSIDE_MAINLAND) and any(
                    (b, e) == (i, j) and self._by_code[c].level == "county"
                    and any(within(c, k) for t in townships for k in t.counties)
                    for c, _, b, e in found):
                continue  # a mainland county's name with one of its townships (新北三井街道)
            if bonus != _FULL and self._town_named_after(text, code, i, j, townships, found):
                if any(t.start == i for t in townships):  # the name the town's begins with
                    contested.append((code, i, j))
                continue  # a town's name (太平镇)
            if bonus != _FULL and any(t.start < i < t.end < j for t in townships) \
                    and not self._stands(code, i, j, found):
                continue  # read across a township's end (镇海 in 荔城镇海)
            generic = bonus == _ALIAS and j - i <= _GENERIC_ALIAS_LEN and text[j - 1] == "区"
            hits.setdefault(code, []).append(
                _Hit(i, j, (j - i) + bonus, generic, bonus == _FULL))
        return hits

    def _stands(self, code: str, i: int, j: int,
                found: list[tuple[str, float, int, int]]) -> bool:
        """A name followed by a road or town word still names its region when one of the
        region's ancestors is named elsewhere and no other place is (江苏苏州大道 and 佛山南海大道
        are in 苏州 and 南海区; 云南勐海镇): the road is then named after the place it runs
        through. Another place named (江苏徐州鼓楼区南京西路, 山东青岛莱阳路), or none above
        (广州北京路), makes it a road's name. Names overlapping `i:j` do not count (乌鲁木齐
        names both 乌鲁木齐市 and its 乌鲁木齐县)."""
        above = {a.code for a in self._chain(code)[1:]}
        apart = [(c, b, e) for c, _, b, e in found if (e <= i or j <= b) and c != code]
        named_above = {(b, e) for c, b, e in apart if c in above}
        if not named_above:
            return False
        # another place: not above, not below, and not read within an ancestor's own name (吉林
        # names 吉林省 and 吉林市, 河北 河北省 and 天津's 河北区, 黑龙江 holds 龙江县's 龙江)
        return all(c in above or any(b < ae and ab < e for ab, ae in named_above) or code in {
            r.code for r in self._chain(c)} for c, b, e in apart)

    def _kept(self, code: str, bonus: float, i: int, j: int, kinds: list[Span],
              own: list[Span]) -> bool:
        if bonus == _FULL:  # a full official name stands, unless it cuts into a kind word
            return not any(k.overlaps(i, j) and not k.within(i, j) for k in kinds) \
                and not any(sp.start < i < sp.end for sp in own)
        if any(k.overlaps(i, j) for k in kinds):
            return False  # 新区 inside 高新区
        if not any(sp.overlaps(i, j) for sp in own):
            return True
        # the city that names the zone stays (西安 in 西安高新区), nothing else in its name
        return (bonus == _SHORT and self._by_code[code].level != "county"
                and any(j == k.start for k in kinds))

    def _zone_hits(self, text: str) -> list[Zone]:
        found: list[Zone] = []
        for i in range(len(text)):
            for j in range(i + 3, min(len(text), i + self._max_zone) + 1):
                piece = text[i:j]
                if piece not in self._zone_prefixes:
                    break
                z = self._zones.get(piece)
                if z is not None and z not in found:
                    found.append(z)
        return found

    def _best(self, hits: dict[str, list[_Hit]],
              text: str) -> tuple[Region | None, tuple[str, ...]]:
        scored: list[tuple[float, Region]] = []
        for code, own in hits.items():
            chain = self._chain(code)
            best = -math.inf
            for own_hit in own:
                ancestors = self._ancestors_score(chain[1:], hits, [own_hit])
                if own_hit.generic and ancestors == 0:
                    continue
                best = max(best, own_hit.weight + ancestors)
            if best > -math.inf:
                scored.append((best, chain[0]))
        if not scored:
            return None, ()
        top = max(s for s, _ in scored)
        best_regions = [r for s, r in scored if s == top]
        if len(best_regions) == 1:
            contradicted = self._contradicted(best_regions[0], hits, text)
            if contradicted is not None:
                return None, tuple(sorted((best_regions[0].code, contradicted.code)))
            return best_regions[0], ()
        common = self._common_ancestor(best_regions)
        return common, () if common else tuple(sorted(r.code for r in best_regions))

    def _within_zone(self, region: Region | None,
                     zones: list[Zone]) -> tuple[Region | None, tuple[str, ...]]:
        """A zone's host(s) against what the rest of the address names: the address region
        when it lies inside a host, the one host the address region contains, else the host
        when there is only one; else None with the hosts as candidates."""
        hosts = sorted({h for z in zones for h in z.hosts})
        if region is not None:
            inside = [h for h in hosts if within(h, region.code)]
            if inside:
                return region, ()
            below = [h for h in hosts if within(region.code, h)]
            if len(below) == 1:
                return self._by_code[below[0]], ()
        if len(hosts) == 1:
            return self._by_code[hosts[0]], ()
        return None, tuple(hosts)

    def _ancestors_score(self, ancestors: list[Region], hits: dict[str, list[_Hit]],
                         used: list[_Hit]) -> float:
        """Best total weight of ancestor matches that do not overlap `used` or each other."""
        if not ancestors:
            return 0.0
        first, rest = ancestors[0], ancestors[1:]
        best = self._ancestors_score(rest, hits, used)  # this ancestor not named
        for h in hits.get(first.code, ()):
            if all(h.end <= u.start or u.end <= h.start for u in used):
                best = max(best, h.weight + self._ancestors_score(rest, hits, [*used, h]))
        return best

    def _contradicted(self, region: Region, hits: dict[str, list[_Hit]],
                      text: str) -> Region | None:
        """A larger region named right before `region`'s own name (nothing but separators
        between) that does not contain it, when `region` is a county (or a place outside
        mainland jurisdiction) and none of its own ancestors is named: "石家庄桥东区" (桥东区 is
        张家口's; 石家庄's was abolished in 2014), "南宁城北区" (西宁's), "北京老城区" (洛阳's),
        "珠海湾仔". Addresses are written from the larger unit down, so the county's name is
        then a former or a street-level name: the answer is ambiguous (the caller asks, or the
        coordinates decide), never the county. A name further away is a shop's or a
        landmark's ("兰州拉面 天河区", "中山大学海珠区"): it does not count."""
        if region.level != "county" and not region.code.startswith(_OUTSIDE_MAINLAND):
            return None
        chain = {r.code for r in self._chain(region.code)}
        if any(code in chain and code != region.code for code in hits):
            return None  # one of its ancestors is named
        starts = [h.start for h in hits[region.code]]
        for code, own in hits.items():
            other = self._by_code[code]
            if code in chain or other.level == "county" or region.code in {
                    r.code for r in self._chain(code)}:
                continue
            if any(h.end <= start and _ADJACENT.fullmatch(text, h.end, start)
                   for h in own for start in starts):
                return other
        return None

    def _common_ancestor(self, regions: list[Region]) -> Region | None:
        chains = [[r.code for r in self._chain(x.code)] for x in regions]
        shared = set(chains[0]).intersection(*chains[1:])
        for code in chains[0]:  # deepest first
            if code in shared:
                return self._by_code[code]
        return None
