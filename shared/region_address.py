"""What a free-text address names: the official, short and former names of regions found in it
and scored against each other, and the development zones or new areas it names (no divisions,
see shared.zones). Used by shared.regions.RegionIndex.parse_address."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opencc import OpenCC

from shared.names import short_name
from shared.region_codes import within
from shared.region_scores import ADJACENT, Hit, Scorer
from shared.region_towns import (
    OUTSIDE_MAINLAND,
    Found,
    TownReader,
    Township,
    stands,
    word_breaks,
)
from shared.zones import Span, Zone, fold, kind_spans, zone_keys

if TYPE_CHECKING:
    from shared.regions import Region

__all__ = ["AddressMatch", "AddressParser"]

# How a name variant found in an address counts: full official name > former name > short name.
_FULL, _ALIAS, _SHORT = 1.0, 0.5, 0.0
# Former names this short ending in 区 are generic words (新区, 城区, 郊区, 矿区): they name a
# place only right under its own parent's name (丰润区 was 唐山's 新区; 成都高新区 is not in
# Hebei).
_GENERIC_ALIAS_LEN = 2
_RANK = {"province": 0, "prefecture": 1, "county": 2}
# What follows a short or former name that names a road after it, not the region (上海乌鲁木齐中路,
# 广州北京路, 天津南京道, 南京中山路, 青岛台东步行街): an optional direction and number, then a
# road word. A single 街 or 道 only where the word ends there (沈阳太原街, but 崇州街子镇 and 东莞
# 道滘 are towns of those cities).
_ROAD = re.compile(r"[东西南北中]?(?:[一二三四五六七八九十]+|\d+)?"
                   r"(?:步行街|大街|大道|胡同|路|巷|弄|[街道](?=$|[\d\s号,，、;；(（]))")
# ... or a place people go to, named after a county elsewhere (武汉天河机场 is no 广州 天河区,
# 重庆解放碑 no 焦作 解放区, 上海瑞金医院 no 江西 瑞金市): such a county's short or former name
# right before one of these words names the facility, not the county, unless the county's
# own prefecture or province is named too (`stands`). Right before the word only: schools and
# hospitals are mostly named after the county they serve (平遥人民医院, 潞城中学).
_FACILITY = re.compile("(?:国际)?机场|医院|公园|动物园|植物园|广场|风景区|景区|石窟|码头|书店|百货|"
                       "商场|纪念碑|碑|寺")
# Names made of a direction and 区 alone (东区, 城区, 郊区, 矿区, 城西区, 市中区): generic words of
# any address (郑州阳光花园东区, 杭州万达广场西区, 广州大学城西区), a region's name only right
# under its own parent's name (攀枝花东区, 阳泉城区, 西宁城西区, 济南市中区; 广东佛山城区 is no
# 汕尾 城区). Former names this short are generic too (_GENERIC_ALIAS_LEN).
_GENERIC_NAME = re.compile(r"(?:[城市][东西南北中]|[东西南北中城郊矿])区")
# ... or a town or village after another region's name (东莞沙田镇 is a town of 东莞, not 香港
# 沙田), where the word ends there (湖南乡下, 武进村前 are not). Alone, the township list decides
# (太平镇 is no 阜新 太平区, 兰陵镇 is in 兰陵县: `TownReader.named_after`).
_TOWN = re.compile(r"[镇乡村](?=$|[\d\s号,，、;；(（]|[^\u4e00-\u9fff])")


# Traditional characters read as simplified (OpenCC t2s): 長沙市開福區 is 长沙市开福区, not the
# fragments 沙市区 (荆州) and 鞍山 (辽宁) a simplified-only scan finds in 長沙/馬鞍山.
_T2S = OpenCC("t2s")


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """What an address names. `region` is the deepest region it pins down (None when it
    names none, or names several unrelated ones: `candidates` then lists them); `zone` is a
    development zone or new area named in it, which is no division (see shared.zones)."""

    region: Region | None
    zone: str | None = None
    candidates: tuple[str, ...] = ()


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
        self._towns = TownReader(regions, chain, townships)
        self._scorer = Scorer(regions, chain)
        # Characters that stand in a place's simplified name as written (乾 in 乾县, 乾安县):
        # never converted, though t2s would read 乾 as 干.
        self._name_chars = frozenset("".join(self._names) + "".join(townships or ())
                                     + "".join(self._zones))

    def simplified(self, text: str) -> str:
        """`text` with its traditional characters read as simplified (OpenCC t2s), except
        those that stand in a place's name as written; unchanged if the conversion does not
        keep one character for one."""
        converted = _T2S.convert(text)
        if converted == text or len(converted) != len(text):
            return text
        return "".join(o if o in self._name_chars else c for o, c in zip(text, converted,
                                                                         strict=True))

    def _add_name(self, name: str, code: str, weight: float) -> None:
        entries = self._names.setdefault(name, [])
        if (code, weight) not in entries:
            entries.append((code, weight))

    def zone(self, name: str) -> Zone | None:
        """A development zone or new area known from data, by any of its spellings."""
        return self._zones.get(fold(name))

    def parse(self, text: str, inside: str | None = None) -> AddressMatch:
        """What an address names; the rules are those of RegionIndex.parse_address."""
        text = self.simplified(text)
        folded = fold(text)
        kinds = kind_spans(folded)
        found = self._scan_names(folded)
        townships = self._towns.hits(folded, found, word_breaks(text, folded))
        contested: list[tuple[str, int, int]] = []
        facilities: list[tuple[str, int, int]] = []
        hits = self._name_hits(folded, kinds, found, townships, contested, facilities)
        zone_hits = self._zone_hits(folded)
        generic: list[str] = []
        region, candidates = self._scorer.best(hits, folded, inside, generic)
        region, candidates = self._towns.unless_a_town(region, candidates, hits, townships,
                                                       contested)
        zone = None
        if zone_hits:
            zone = max(zone_hits, key=lambda z: len(z.name)).name
            region, candidates = self._scorer.within_zone(region, zone_hits)
        else:
            chosen = self._towns.inside(inside, region, candidates, townships, hits, contested)
            region, candidates = self._towns.by_township(region, candidates, townships, hits,
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
        named_for = sorted({c for c, _, _ in facilities})
        if region is not None and region.level != "county" and named_for and not any(
                (h.end <= fi and ADJACENT.fullmatch(folded, h.end, fi)) or h.start <= fi < h.end
                for h in hits.get(region.code, ()) for _, fi, _ in facilities):
            # a province or city named elsewhere in the text (a home town: 四川人，在萧山机场
            # 走丢; 广东人，在天河机场走丢, though 广东 has a 天河区) does not say where the
            # facility is: the operator is asked, both the candidates; one named right before
            # it does (武汉天河机场), and so does a county named anywhere (中山医院徐汇区)
            candidates = tuple(sorted({region.code, *named_for}))
            region = None
        if region is None and named_for:
            candidates = tuple(sorted({*candidates, *named_for}))
        if region is None and not candidates:
            # named after a place, perhaps its own (浦东机场), perhaps another (天河机场 is
            # 武汉's), or a generic district name alone (市南区香港中路): the operator is asked,
            # these the candidates
            candidates = tuple(sorted({*named_for, *generic}))
        if inside is not None and region is None and candidates and (
                set(candidates) <= {*named_for, *generic}
                or len({self._by_code[c].name for c in candidates}) == 1
                or any(c in named_for for c in candidates)):
            # the region code given with the address narrows a name several regions have
            # (110000 + 朝阳区 is 北京's, 320300 + 鼓楼区 徐州's), or decides a facility's
            # (310000 + 浦东机场) or a generic name's (440000 + 城区: 汕尾's, the only one);
            # two places the text names apart (a home town and where the child was lost)
            # stay two
            mine = [c for c in candidates if within(inside, c)]
            if len(mine) == 1:
                region, candidates = self._by_code[mine[0]], ()
        return AddressMatch(region, zone, candidates)

    def _scan_names(self, text: str) -> list[Found]:
        """Every (code, weight, start, end) of a region's name found in `text`."""
        found: list[Found] = []
        for i in range(len(text)):
            for j in range(i + 2, min(len(text), i + self._max_name) + 1):
                piece = text[i:j]
                if piece not in self._name_prefixes:
                    break  # no name begins so: none is longer either
                found.extend((code, bonus, i, j)
                             for code, bonus in self._names.get(piece, ()))
        return found

    def _name_hits(self, text: str, kinds: list[Span], found: list[Found],
                   townships: list[Township], contested: list[tuple[str, int, int]],
                   facilities: list[tuple[str, int, int]] | None = None
                   ) -> dict[str, list[Hit]]:
        """The names that nominate their region, by code; the counties whose name was read as
        a town's go to `contested` (code, start, end), the regions whose name was read as a
        facility's (_FACILITY) to `facilities`."""
        # A zone's own name: a county's short or former name right before a kind word (江北 in
        # 江北新区, 清水河 in 清水河高新区), with every name partly inside it (清水 and 九龙 in
        # 清水河/九龙坡, 清新区 in 武清新区).
        own = [Span(i, j) for code, bonus, i, j in found
               if bonus != _FULL and self._by_code[code].level == "county"
               and any(j == k.start for k in kinds)]
        starts = {i for _, _, i, _ in found}
        ends = {j for _, _, _, j in found}
        spans = {(i, j) for _, _, i, j in found}
        # A facility's name: a county's short or former name right before a facility word
        # (not another name or a township's beginning there: 西安碑林区, 南安码头镇, 自贡
        # 东兴寺街道), its own city or
        # province not named right before it nor by `stands` (天河机场, 瑞金医院). Every name
        # within it is the facility's too — a shorter one (雨花 in 雨花台风景区, 九龙 in
        # 九龙坡广场) and another region's of the same spelling (中山市 in 中山公园) — unless
        # that one stands.
        named_for = [Span(i, j) for code, bonus, i, j in found
                     if bonus != _FULL and self._by_code[code].level == "county"
                     and _FACILITY.match(text, j) and j not in starts
                     and not any(t.start <= j < t.end for t in townships)
                     and not _facility_stands(self._chain, code, i, found, text)]
        hits: dict[str, list[Hit]] = {}
        for code, bonus, i, j in found:
            if not self._kept(code, bonus, i, j, kinds, own):
                continue
            if i not in ends and _read_across(self._by_code, code, bonus, i, j, found, spans, text):
                continue
            if bonus != _FULL and any(sp.within(i, j) or (sp.start <= i and j <= sp.end)
                                      for sp in named_for) \
                    and not _facility_stands(self._chain, code, i, found, text):
                if facilities is not None:
                    facilities.append((code, i, j))
                continue  # a facility's name (天河机场, 解放碑, 瑞金医院)
            if bonus != _FULL and j not in starts and (_ROAD.match(text, j) or (
                    _TOWN.match(text, j) and any(e <= i for _, _, _, e in found))) \
                    and not stands(self._chain, code, i, j, found):
                continue  # a road's or a town's name, not the region's
            if bonus != _FULL and code.startswith(OUTSIDE_MAINLAND) and any(
                    b < i < e and not c.startswith(OUTSIDE_MAINLAND) for c, _, b, e in found):
                continue  # begins inside a mainland name (丰台南苑: no 台南; 邢台北: no 台北)
            if bonus != _FULL and code.startswith(OUTSIDE_MAINLAND) and any(
                    (b, e) == (i, j) and self._by_code[c].level == "county"
                    and any(within(c, k) for t in townships for k in t.counties)
                    for c, _, b, e in found):
                continue  # a mainland county's name with one of its townships (新北三井街道)
            if bonus != _FULL and self._towns.named_after(text, code, i, j, townships, found):
                if any(t.start == i for t in townships):  # the name the town's begins with
                    contested.append((code, i, j))
                continue  # a town's name (太平镇)
            if bonus != _FULL and any(t.start < i < t.end < j for t in townships) \
                    and not stands(self._chain, code, i, j, found):
                continue  # read across a township's end (镇海 in 荔城镇海)
            generic = (bonus == _ALIAS and j - i <= _GENERIC_ALIAS_LEN and text[j - 1] == "区"
                       ) or _GENERIC_NAME.fullmatch(text, i, j) is not None \
                or _GENERIC_NAME.fullmatch(self._by_code[code].name) is not None
            hits.setdefault(code, []).append(
                Hit(i, j, (j - i) + bonus, generic, bonus == _FULL))
        return hits

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


def _read_across(regions: Mapping[str, Region], code: str, bonus: float, i: int, j: int,
                 found: list[Found], spans: set[tuple[int, int]], text: str) -> bool:
    """Whether the name text[i:j] is read inside or across another name found, and is not
    the region's (the caller checks that no name ends where it begins: 青岛市南区 keeps
    市南区):
    - wholly inside a longer name (鞍山 in 马鞍山, 城区 in 山城区, 高县 in 阳高县);
    - a short name begun inside a province's name (上海南站 names no 海南, 湖北京山 no 北京);
    - any name begun where a county's full or former name begins inside the name of a
      province, or of a prefecture when what the county's name runs on to is a name of
      its own (佛山城区 names no 鹤壁 山城区 nor 山城: 城区; 九江城区 no 江城区, 盐城西区 no
      城西区, 香港北区 no 港北区, 湖南市区 no 南市区), or of any name when it runs on to a
      generic district name (高平城区 is 高平's town, no 大同 平城区; 响水城区 no 水城区).
    Otherwise names crossing each other all stay, and the scores or the operator decide:
    离石家庄 is 石家庄, 位于都江堰市 is 都江堰, 和田家庵区 is 田家庵区, 来宾川县 is 宾川县,
    来凤凰 is asked."""
    around = [(other, b, e) for other, _, b, e in found if b < i < e]
    if not around:
        return False
    here = [(c2, j2) for c2, b2, i2, j2 in found if i2 == i and b2 != _SHORT]
    for other, _, e in around:
        if j <= e:
            return True
        above = _RANK[regions[other].level]
        if above == 0 and bonus == _SHORT:
            return True
        if any(j2 > e and ((above < _RANK[regions[c2].level]
                            and (above == 0 or (e, j2) in spans))
                           or ((e, j2) in spans and _GENERIC_NAME.fullmatch(text, e, j2)))
               for c2, j2 in here):
            return True
    return False

def _facility_stands(chain: Callable[[str], list[Region]], code: str, i: int,
                     found: list[Found], text: str) -> bool:
    """A county's name before a facility word names the county when its own prefecture or
    province is named right before it (深圳宝安机场, 北京市朝阳公园, 家在东莞，在深圳宝安机场);
    named elsewhere it may be a home town (河南人，在解放碑走丢: 重庆's, not 焦作 解放区)."""
    above = {a.code for a in chain(code)[1:]}
    return any(c in above and e <= i and ADJACENT.fullmatch(text, e, i)
               for c, _, _, e in found)
