"""Where a report is placed (issue 11 "Place" and "Coordinates datum"): a table of real-world
addresses and coordinate pairs with the county each must lead from, against the committed
region and boundary data (shared/data, see its README)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import airportsdata
import pytest

from services.alert.domain import IntakeRefused
from services.alert.place import CONFLICT_KM, PlaceResolution, resolve_place
from shared.boundaries import BoundaryIndex, boundary_index
from shared.datum import Datum, from_wgs84
from shared.names import short_name
from shared.regions import RegionIndex, region_index, within
from shared.report import Report, ResolvedReport
from tests.helpers import report_body

_AIRPORTS = airportsdata.load("IATA")


def airport(iata: str) -> dict[str, Any]:
    """An airport's coordinates as airportsdata publishes them (WGS-84)."""
    a = _AIRPORTS[iata]
    return {"lat": float(a["lat"]), "lon": float(a["lon"])}


@pytest.fixture(scope="module")
def ix() -> RegionIndex:
    return region_index()


@pytest.fixture(scope="module")
def bx() -> BoundaryIndex:
    return boundary_index()


def place(**last_seen: Any) -> Report:
    body = report_body()
    body["last_seen"] = {"at": body["last_seen"]["at"], **last_seen}
    return Report.model_validate(body)


def resolve(ix: RegionIndex, bx: BoundaryIndex, **last_seen: Any) -> PlaceResolution:
    return resolve_place(place(**last_seen), ix, bx)


@dataclass
class Case:
    why: str
    last_seen: dict[str, Any]
    code: str | None = None  # the county (or host prefecture) it must lead from
    refused: tuple[str, str] | None = None  # (error code, field)
    conflict: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


LUZHOU = {"lat": 36.19, "lon": 113.11}  # 长治 潞州区, near 英雄南路
ASK_COUNTY = ("place_unresolved", "last_seen.region_code")
CASES = [
    # -- the issue's own examples ---------------------------------------------------------------
    Case("issue: 成都高新区 address only -> 成都市, never 唐山丰润区 (stale alias 新区)",
         {"address": "成都高新区天府大道北段1700号"}, "510100"),
    Case("issue: 成都高新区 with coordinates -> the county the point lies in",
         {"address": "成都高新区天府大道北段1700号", "lat": 30.574, "lon": 104.067}, "510107"),
    Case("issue: a border-town point goes to its own county, not the nearer seat (燕郊 三河市, "
         "nearest seat 北京通州)", {"lat": 39.955, "lon": 116.82}, "131082"),
    Case("issue: retired 140421 长治县 -> 140404 上党区", {"region_code": "140421"}, "140404"),
    # -- development zones and new areas (each kind) ------------------------------------------
    Case("高新区 of a prefecture", {"address": "西安高新区锦业路1号"}, "610100"),
    Case("高新技术产业开发区, long form, from 统计用区划代码 220173",
         {"address": "吉林省长春高新技术产业开发区前进大街"}, "220100"),
    Case("经济技术开发区 from data (130371)", {"address": "秦皇岛经济技术开发区龙海道"}, "130300"),
    Case("经济开发区 with the province in front (130271)",
         {"address": "河北唐山芦台经济开发区海北镇"}, "130200"),
    Case("工业园区 from data (320576)", {"address": "苏州工业园区星湖街328号"}, "320500"),
    Case("综合保税区: the host city named, the county's name is the zone's own",
         {"address": "郑州新郑综合保税区"}, "410100"),
    Case("保税区 in a municipality: no host pinned down -> ask for the county",
         {"address": "天津港保税区海滨九路"}, refused=ASK_COUNTY),
    Case("保税区 with coordinates -> the county the point lies in",
         {"address": "天津港保税区海滨九路", "lat": 39.02, "lon": 117.70}, "120116"),
    Case("实验区 from data (410173)", {"address": "郑州航空港经济综合实验区"}, "410100"),
    Case("新区 that is a division (两江新区, 2025)", {"address": "重庆两江新区金开大道"}, "500157"),
    Case("新区 that is a division (浦东新区)", {"address": "上海市浦东新区张江路"}, "310115"),
    Case("新区 that is a division (滨海新区)", {"address": "天津市滨海新区"}, "120116"),
    Case("国家级新区 with one host: 江北 is the zone's name, not 宁波江北区",
         {"address": "南京江北新区浦滨路"}, "320100"),
    Case("国家级新区 with one host (兰州新区)", {"address": "兰州新区中川园区"}, "620100"),
    Case("国家级新区 coinciding with a district (南沙新区 = 南沙区)", {"address": "广州南沙新区"},
         "440115"),
    Case("国家级新区 across two prefectures, neither named -> ask for the county",
         {"address": "天府新区华阳街道"}, refused=ASK_COUNTY),
    Case("国家级新区 across two prefectures, the address names one",
         {"address": "眉山天府新区视高"}, "511400"),
    Case("国家级新区 across two prefectures, coordinates decide",
         {"address": "天府新区华阳街道", "lat": 30.50, "lon": 104.07}, "510116"),
    Case("开发区 of a county, county named in full", {"address": "江苏省昆山市开发区前进东路"},
         "320583"),
    Case("开发区 of a county by its short name only -> ask for the county",
         {"address": "昆山开发区"}, refused=ASK_COUNTY),
    Case("the former name 新区 alone names nothing", {"address": "新区人民路"},
         refused=ASK_COUNTY),
    Case("the current name of 丰润区 still works", {"address": "河北省唐山市丰润区"}, "130208"),
    # -- border towns: point in polygon where the nearest seat is the neighbour's ---------------
    Case("凤岗镇 (东莞) next to 深圳龙岗", {"lat": 22.745, "lon": 114.14}, "441900"),
    Case("盛泽镇 (苏州吴江) next to 嘉兴秀洲 (another province)", {"lat": 30.91, "lon": 120.65},
         "320509"),
    Case("花桥 (昆山) next to 上海嘉定", {"lat": 31.305, "lon": 121.11}, "320583"),
    Case("韩店 (上党区), 10 km from 潞州区's seat", {"lat": 36.06, "lon": 113.06}, "140404"),
    # -- airports that lie in a neighbouring county ---------------------------------------------
    Case("北京首都机场: an enclave of 朝阳区 inside 顺义区", airport("PEK"), "110105"),
    Case("广州白云机场 lies in 花都区", airport("CAN"), "440114"),
    Case("重庆江北机场 lies in former 渝北区, now 两江新区", airport("CKG"), "500157"),
    Case("西安咸阳机场 lies in 咸阳渭城区", airport("XIY"), "610404"),
    Case("南京禄口机场 lies in 江宁区 (nearest seat 溧水)", airport("NKG"), "320115"),
    Case("石家庄正定机场 lies in 正定县 (nearest seat 新乐)", airport("SJW"), "130123"),
    Case("南昌昌北机场 lies in 新建区 (nearest seat 九江永修)", airport("KHN"), "360112"),
    Case("兰州中川机场 lies in 永登县", airport("LHW"), "620121"),
    Case("成都天府机场 lies in 简阳市", airport("TFU"), "510185"),
    Case("哈尔滨太平机场 lies in 道里区 (nearest seat 双城)", airport("HRB"), "230102"),
    # -- order: region code, then address, then coordinates -------------------------------------
    Case("code alone", {"region_code": "140403"}, "140403"),
    Case("address alone", {"address": "山西省长治市潞州区英雄南路"}, "140403"),
    Case("coordinates alone", LUZHOU, "140403"),
    Case("a prefecture code refined by coordinates inside it", {"region_code": "140400", **LUZHOU},
         "140403"),
    Case("address beats coordinates in another province: accepted with place_conflict",
         {"address": "山西省长治市潞州区英雄南路", "lat": 37.87, "lon": 112.55}, "140403",
         conflict=True),
    Case("code beats an address elsewhere: accepted with place_conflict",
         {"region_code": "140403", "address": "北京市朝阳区建国路88号"}, "140403", conflict=True),
    Case("coordinates just across the border (< CONFLICT_KM): no conflict",
         {"address": "山西省长治市上党区", "lat": 36.125, "lon": 113.09}, "140404"),
    Case("retired 500105 江北区 (2025) -> 两江新区", {"region_code": "500105"}, "500157"),
    Case("a code that never existed", {"region_code": "149999"},
         refused=("unknown_region", "last_seen.region_code")),
    # -- townships (shared/data/townships.json) -------------------------------------------------
    Case("a town named like a county in another province (太平镇, not 阜新 太平区), with the "
         "point in 长治: the point decides, no conflict", {"address": "太平镇菜市场", **LUZHOU},
         "140403"),
    Case("the same town with the operator's prefecture: that prefecture, no conflict",
         {"region_code": "140400", "address": "太平镇菜市场"}, "140400"),
    Case("the same town alone (50 counties have a 太平镇): asks for the county",
         {"address": "太平镇菜市场"}, refused=ASK_COUNTY),
    Case("the operator's prefecture and a township of one of its counties: that county",
         {"region_code": "510100", "address": "街子镇古寺路"}, "510184"),
    Case("a township only one county has, alone: asks, naming it", {"address": "安亭镇墨玉南路"},
         refused=ASK_COUNTY),
    Case("the same with the operator's municipality: that county",
         {"region_code": "310000", "address": "安亭镇墨玉南路"}, "310114"),
    Case("a township below the named prefecture: its county (沙田镇 of 惠阳, not 香港 沙田)",
         {"address": "广东省惠州市沙田镇"}, "441303"),
    # -- 香港, 澳门, 台湾 -------------------------------------------------------------------------
    Case("香港 by coordinates (HKG)", airport("HKG"),
         refused=("outside_mainland_jurisdiction", "last_seen.lat")),
    Case("澳门 by coordinates (MFM)", airport("MFM"),
         refused=("outside_mainland_jurisdiction", "last_seen.lat")),
    Case("台湾 by coordinates (TPE)", airport("TPE"),
         refused=("outside_mainland_jurisdiction", "last_seen.lat")),
    Case("香港 by address", {"address": "香港九龙弥敦道"},
         refused=("outside_mainland_jurisdiction", "last_seen.address")),
    Case("香港 by region code", {"region_code": "810000"},
         refused=("outside_mainland_jurisdiction", "last_seen.region_code")),
    Case("a Shenzhen address with a point across the river in 香港: led by 深圳, conflict shown",
         {"address": "广东省深圳市罗湖区", "lat": 22.40, "lon": 114.11}, "440303", conflict=True),
    # -- nowhere -------------------------------------------------------------------------------
    Case("coordinates abroad", {"lat": -33.86, "lon": 151.21},
         refused=("place_unresolved", "last_seen.lat")),
]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.why for c in CASES])
def test_place_table(ix: RegionIndex, bx: BoundaryIndex, case: Case) -> None:
    if case.refused is not None:
        with pytest.raises(IntakeRefused) as refused:
            resolve(ix, bx, **case.last_seen)
        assert (refused.value.code, refused.value.field) == case.refused
        assert refused.value.status == 422
        return
    got = resolve(ix, bx, **case.last_seen)
    seen = got.report.last_seen
    assert seen.region_code == case.code, (case.why, seen.region_code, got.conflict)
    assert (got.conflict is not None) == case.conflict, got.conflict
    if case.code is not None and not case.code.startswith("1302"):
        assert not within("130200", seen.region_code)  # never the stale 唐山 alias
    assert seen.datum == Datum.wgs84
    # Only the place is validated anew (issue 15: the rest of the body was, a moment before):
    # the same report as validating all of it again.
    again = ResolvedReport.model_validate(got.report.model_dump())
    assert again == got.report
    assert again.model_fields_set == got.report.model_fields_set
    assert again.model_dump_json() == got.report.model_dump_json()


POINTS = [c for c in CASES if c.refused is None and "lat" in c.last_seen and c.code]


@pytest.mark.parametrize("case", POINTS, ids=[c.why for c in POINTS])
def test_distance_to_an_area_is_to_its_nearest_polygon(bx: BoundaryIndex, case: Case) -> None:
    """The prefix index gives what looking at every polygon gives, for the county, its
    prefecture and province, and a neighbouring province."""
    lat, lon = case.last_seen["lat"], case.last_seen["lon"]
    assert case.code is not None
    for prefix in (case.code, case.code[:4], case.code[:2], "15", "1404"):
        every = min((bx.distance_km(c, lat, lon) for c in bx.codes() if c.startswith(prefix)),
                    default=float("inf"))
        assert bx.distance_to_area_km(prefix, lat, lon) == every, prefix


def test_a_conflict_carries_both_parts(ix: RegionIndex, bx: BoundaryIndex) -> None:
    got = resolve(ix, bx, address="山西省长治市潞州区英雄南路", lat=37.87, lon=112.55)
    conflict = got.conflict
    assert conflict is not None
    assert (conflict.chosen, conflict.region_code) == ("address", "140403")
    parts = {p.source: p for p in conflict.parts}
    assert parts["address"].region_code == "140403" and parts["address"].name == "潞州区"
    coords = parts["coordinates"]
    assert coords.region_code is not None and coords.region_code.startswith("1401")  # 太原
    assert coords.distance_km is not None and coords.distance_km > 100
    assert got.answer()["conflict"]["parts"][1]["source"] == "coordinates"  # type: ignore[index]


def test_the_conflict_threshold_is_a_few_km() -> None:
    assert 1 <= CONFLICT_KM <= 5


def test_lat_lon_derived_from_the_region_when_missing(ix: RegionIndex, bx: BoundaryIndex) -> None:
    got = resolve(ix, bx, address="山西省长治市潞州区英雄南路")
    assert got.derived == ["region_code", "lat_lon"]
    assert abs(got.report.last_seen.lat - 36.2) < 0.1
    given = resolve(ix, bx, region_code="140403", **LUZHOU)
    assert given.derived == [] and given.report.last_seen.lat == LUZHOU["lat"]


def test_a_county_without_a_seat_point_of_its_own_is_centred_inside_itself(
        ix: RegionIndex, bx: BoundaryIndex) -> None:
    """The counties whose seat point is only their parent's (the 兵团 cities carry 乌鲁木齐's,
    hundreds of km off): the search is centred inside the county's own boundary, or, with no
    boundary either, the report asks for the coordinates."""
    inherited = [r for r in ix.all() if r.centroid_inherited and r.level == "county"]
    assert len(inherited) >= 20
    for region in inherited:
        if bx.polygon(region.code) is None:
            with pytest.raises(IntakeRefused) as refused:
                resolve(ix, bx, region_code=region.code)
            assert (refused.value.code, refused.value.field) == (
                "coordinates_required", "last_seen.lat")
            continue
        got = resolve(ix, bx, region_code=region.code)
        seen = got.report.last_seen
        assert "lat_lon" in got.derived
        assert bx.distance_to_area_km(region.code, seen.lat, seen.lon) == 0, region
    # with coordinates, any of them is accepted as given
    pin = {"lat": 47.5, "lon": 88.0}
    assert resolve(ix, bx, region_code="659011", **pin).report.last_seen.lat == pin["lat"]


def test_a_zone_refusal_names_the_zone_and_its_hosts(ix: RegionIndex, bx: BoundaryIndex) -> None:
    with pytest.raises(IntakeRefused) as refused:
        resolve(ix, bx, address="天府新区华阳街道")
    hint = refused.value.context["hint"]
    assert "天府新区" in hint and "510100 成都市" in hint and "511400 眉山市" in hint


@pytest.mark.parametrize("kind", ["高新区", "经开区", "新区", "保税区", "工业园区",
                                  "经济技术开发区", "高新技术产业开发区", "综合保税区"])
def test_no_zone_of_any_city_lands_in_another_province(ix: RegionIndex, kind: str) -> None:
    """For every prefecture P, "<P's short name><zone kind>…" names P (or an ancestor, when
    the short name is shared) or nothing — never a place outside P's province."""
    wrong = []
    for p in ix.all("prefecture"):
        short = short_name(p.name)
        if short is None:
            continue
        m = ix.parse_address(f"{short}{kind}人民路1号")
        if m.region is not None and not (within(m.region.code, p.code)
                                          or within(p.code, m.region.code)):
            wrong.append((p.name, m.region.code, m.region.name))
    assert wrong == []


@pytest.mark.parametrize("kind", ["高新区", "经开区", "新区", "保税区", "工业园区"])
def test_no_zone_named_after_a_county_lands_in_another_province(ix: RegionIndex,
                                                               kind: str) -> None:
    """For every county C, "<C's short name><zone kind>…" names nothing (the caller is asked
    for the county), a place in C's province, a same-named city (西安高新区 is 西安市, not
    辽源 西安区) or a zone known from data (江北新区 is 南京's) — never a place elsewhere
    found in part of the name (清水 in 清水河, 九龙 in 九龙坡, 清新区 in 武清新区)."""
    wrong = []
    for c in ix.all("county"):
        short = short_name(c.name)
        if short is None:
            continue
        m = ix.parse_address(f"{short}{kind}人民路1号")
        r = m.region
        if r is None or within(c.code[:2] + "0000", r.code) or short_name(r.name) == short:
            continue
        if m.zone is not None and m.zone == f"{short}{kind}" and ix.zone(m.zone) is not None:
            continue
        wrong.append((c.name, r.code, r.name))
    assert wrong == []


@pytest.mark.parametrize("datum", [Datum.gcj02, Datum.bd09])
def test_coordinates_in_a_chinese_datum_are_stored_as_wgs84(
        ix: RegionIndex, bx: BoundaryIndex, datum: Datum) -> None:
    lat, lon = from_wgs84(LUZHOU["lat"], LUZHOU["lon"], datum)
    assert abs(lat - LUZHOU["lat"]) + abs(lon - LUZHOU["lon"]) > 0.003  # hundreds of metres
    got = resolve(ix, bx, lat=lat, lon=lon, datum=datum.value)
    seen = got.report.last_seen
    assert abs(seen.lat - LUZHOU["lat"]) < 1e-6 and abs(seen.lon - LUZHOU["lon"]) < 1e-6
    assert seen.datum == Datum.wgs84 and "datum" in got.derived
    assert seen.region_code == "140403"


def test_the_datum_default_is_wgs84() -> None:
    assert place(**LUZHOU).last_seen.datum == Datum.wgs84


@pytest.mark.parametrize(
    ("address", "zone"),
    [("天津市滨海新区", None), ("上海浦东新区张江", None), ("广东省清远市清新区", None),
     ("成都高新区天府大道", "成都高新区"), ("江苏省昆山市开发区前进路", "开发区"),
     ("苏州工业园区星湖街", "苏州工业园区"), ("长春高新技术产业开发区", "长春高新技术产业开发区")],
)
def test_zones_are_reported_and_divisions_are_not_zones(ix: RegionIndex, address: str,
                                                        zone: str | None) -> None:
    assert ix.parse_address(address).zone == zone


@pytest.mark.parametrize(("address", "code"), [
    ("武汉东湖新技术开发区", "420100"),  # the official name, once read as 湖新技术开发区
    ("湖北省武汉市东湖新技术开发区光谷大道", "420100"),
    ("武汉东湖新技术产业开发区", "420100"),
    ("南昌东湖区", "360102"),  # the district stays a district
])
def test_a_new_technology_zone_is_read_as_a_high_tech_zone(ix: RegionIndex, address: str,
                                                           code: str) -> None:
    match = ix.parse_address(address)
    assert match.region is not None and match.region.code == code, (address, match)
