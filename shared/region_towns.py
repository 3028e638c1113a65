"""Township names in a free-text address (镇, 乡, 街道, 苏木: shared/data/townships.json, the
国家统计局 2023 list) and what they say about the region it names: when a region's name is read
as part of a town's (太平镇 is no 阜新 太平区), and placing an address below the region it names
by the one county there that has the town (江苏鼓楼区湖南路街道 is 南京's 鼓楼区). Used by
shared.region_address.AddressParser; the rules as a whole are RegionIndex.parse_address's."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from shared.region_codes import within
from shared.zones import fold

if TYPE_CHECKING:
    from shared.regions import Region

__all__ = ["OUTSIDE_MAINLAND", "Found", "Hits", "Spanned", "TownReader", "Township", "stands",
           "word_breaks"]

# A region's name found in an address: (code, weight, start, end) of text[start:end].
Found = tuple[str, float, int, int]


class Spanned(Protocol):
    """Where a region's name that nominates its region stands in the address."""

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


# The names that nominate their region, by code (AddressParser's hits).
Hits = Mapping[str, Sequence[Spanned]]

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
# The four municipalities: province-level, but one city each (上海安亭镇 is placed by its town).
_MUNICIPALITIES = frozenset({"110000", "120000", "310000", "500000"})
# Outside mainland jurisdiction (香港, 澳门, 台湾): their place names are common names of mainland
# towns and streets too (珠海湾仔, 南京元朗, 河北新北).
OUTSIDE_MAINLAND = ("71", "81", "82")


def _is_cjk(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


def word_breaks(text: str, folded: str) -> frozenset[int]:
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
class Township:
    """A township's name found in an address, text[start:end], and the counties that have
    a township of that name."""

    start: int
    end: int
    counties: tuple[str, ...]
    name: str = ""


def stands(chain: Callable[[str], list[Region]], code: str, i: int, j: int,
           found: list[Found]) -> bool:
    """A name followed by a road or town word still names its region when one of the
    region's ancestors is named elsewhere and no other place is (江苏苏州大道 and 佛山南海大道
    are in 苏州 and 南海区; 云南勐海镇): the road is then named after the place it runs
    through. Another place named (江苏徐州鼓楼区南京西路, 山东青岛莱阳路), or none above
    (广州北京路), makes it a road's name. Names overlapping `i:j` do not count (乌鲁木齐
    names both 乌鲁木齐市 and its 乌鲁木齐县)."""
    above = {a.code for a in chain(code)[1:]}
    apart = [(c, b, e) for c, _, b, e in found if (e <= i or j <= b) and c != code]
    named_above = {(b, e) for c, b, e in apart if c in above}
    if not named_above:
        return False
    # another place: not above, not below, and not read within an ancestor's own name (吉林
    # names 吉林省 and 吉林市, 河北 河北省 and 天津's 河北区, 黑龙江 holds 龙江县's 龙江)
    return all(c in above or any(b < ae and ab < e for ab, ae in named_above) or code in {
        r.code for r in chain(c)} for c, b, e in apart)


class TownReader:
    """The `townships` (name -> the codes of the counties that have one of that name) of
    `regions` (by code), read against the region names found in an address; `chain(code)` is
    the region then its ancestors (RegionIndex.chain)."""

    def __init__(self, regions: Mapping[str, Region], chain: Callable[[str], list[Region]],
                 townships: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self._by_code = regions
        self._chain = chain
        self._townships = {name: tuple(c for c in codes if c in regions)
                           for name, codes in (townships or {}).items()}
        self._max_township = max((len(n) for n in self._townships), default=0)

    def hits(self, text: str, found: list[Found],
                       breaks: frozenset[int] = frozenset()) -> list[Township]:
        """The townships named in `text`, left to right: at each township word (镇, 乡,
        街道, 苏木) the longest name ending there, not across a space the caller typed
        (`breaks`: 大竹 镇上 is 大竹), that does not begin inside a region's name found
        (淮北市东街道 is 东街道, 湖南安乡 holds no 南安乡, 侯马路东街道 no 马路东街道), unless
        that name is itself read across another (上海安亭镇: 海安 is no name there); one
        inside another does not count (北太平镇 holds 太平镇). A name of one character before
        its township word counts only right after a region's name (桐乡乌镇; alone, 乌镇 is
        the famous 乌镇镇 of 桐乡 more often than 陕西 佳县's 乌镇; 安亭新镇 holds no 新镇)."""
        towns: list[Township] = []
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
                towns.append(Township(start, end, counties, name))
                break
        return [t for t in towns if not any(
            o is not t and o.start <= t.start and t.end <= o.end for o in towns)]

    def named_after(self, text: str, code: str, i: int, j: int,
                          townships: list[Township],
                          found: list[Found]) -> bool:
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
        county = self._by_code[code].level == "county" or code.startswith(OUTSIDE_MAINLAND)
        named = {c for c, _, _, _ in found} & {a.code for a in self._chain(code)[1:]}
        for t in holding:
            if any(within(code, c) for c in t.counties):
                continue
            stem_end = t.end - (2 if text.endswith(("街道", "苏木"), 0, t.end) else 1)
            if not (county or t.start < i or j < stem_end or t.end == len(text)
                    or not _is_cjk(text[t.end])):
                continue
            if stands(self._chain, code, i, j, found) and not any(
                    within(a, c) for a in named for c in t.counties):
                continue
            return True
        return False

    def inside(self, inside: str | None, region: Region | None, candidates: tuple[str, ...],
                townships: list[Township], hits: Hits,
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

    def unless_a_town(self, region: Region | None, candidates: tuple[str, ...],
                       hits: Hits, townships: list[Township],
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
                        townships: list[Township],
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

    def by_township(self, region: Region | None, candidates: tuple[str, ...],
                     townships: list[Township], hits: Hits,
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

    def _usable(self, areas: list[str], townships: list[Township],
                hits: Hits) -> list[Township]:
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
    def _two_places_below(code: str, hits: Hits) -> bool:
        """The text names two places below `code`, apart in the text and neither inside the
        other (衡阳 and 长沙 below 湖南); one name read as two places (鼓楼区: 南京's and
        徐州's) is not two."""
        below = [(c, h.start, h.end) for c, hs in hits.items() if c != code and within(code, c)
                 for h in hs]
        return any(e1 <= b2 and not within(c1, c2) and not within(c2, c1)
                   for c1, b1, e1 in below for c2, b2, e2 in below)

    def _province_alone(self, code: str, hits: Hits) -> bool:
        """`code` is a province (not one of the four municipalities, which are cities) with
        nothing named below it: a town does not pin a county there (长安镇 广西人 is no
        广西 融安县's 长安镇; 吉林's 吉林市 is the same word; 江苏鼓楼区湖南路街道 names
        counties below 江苏), not even a county directly under it (海南人，在长征镇走丢 is no
        琼中: 上海 has a 长征镇 too)."""
        own = {(h.start, h.end) for h in hits.get(code, ())}
        return (self._by_code[code].level == "province" and code not in _MUNICIPALITIES
                and not any(c != code and within(code, c) and (h.start, h.end) not in own
                            for c, hs in hits.items() for h in hs))

    def _one_county(self, areas: list[str], townships: list[Township]) -> str | None:
        """The one county within `areas` that every township named there points at, if any."""
        fits = [[c for c in t.counties if any(within(a, c) for a in areas)] for t in townships]
        found = {f[0] for f in fits if len(f) == 1}
        if len(found) == 1 and all(len(f) <= 1 for f in fits):
            return found.pop()
        return None
