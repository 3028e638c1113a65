"""The roster generated from the region data, and the roster file that overrides it."""

import re
from pathlib import Path

import pytest

from services.dispatch.roster import NAME_EXCEPTIONS, Roster, load_roster
from shared.regions import Region, region_index

OUTSIDE_MAINLAND = ("71", "81", "82")


def test_an_organ_for_every_mainland_province_prefecture_and_county() -> None:
    roster = Roster({})
    regions = [r for r in region_index().all() if not r.code.startswith(OUTSIDE_MAINLAND)]
    organs = [roster.organ(r.code) for r in regions]
    assert all(o is not None for o in organs) and len(organs) == len(regions)
    for organ in organs:
        assert organ is not None and organ.placeholder
        assert organ.head.name and organ.deputy.name and organ.head.name != ""
        assert set(organ.members) == {"investigation", "rescue", "family_liaison"}


def test_organ_names_follow_the_real_pattern() -> None:
    roster = Roster({})
    names = {code: roster.organ(code).name for code in  # type: ignore[union-attr]
             ("140403", "140000", "140400", "110101", "110000", "652700", "652701")}
    assert names == {
        "140403": "长治市公安局潞州分局", "140000": "山西省公安厅", "140400": "长治市公安局",
        "110101": "北京市公安局东城分局", "110000": "北京市公安局",
        "652700": "博尔塔拉蒙古自治州公安局", "652701": "博乐市公安局"}
    assert roster.organ("999999") is None


# The rule table (issue 11 §8): for each kind of division, what its organ is called. A kind is
# told apart by the division's level, its name's ending and its parent — written out here
# independently of roster.organ_name. `{name}` the division, `{city}` its parent's name,
# `{stem}` the name without the final 区.
RULES: list[tuple[str, str, str]] = [
    # (kind, how it is recognised, expected name)
    ("municipality", "province ending 市", "{name}公安局"),
    ("province", "province ending 省 or 自治区", "{name}公安厅"),
    ("prefecture", "prefecture ending 市 or 自治州", "{name}公安局"),
    ("prefecture office", "prefecture ending 地区 or 盟", "{name}公安处"),
    ("under a province", "county whose parent is a province that is not a municipality "
     "(林区, 省直辖县级市, 兵团 cities)", "{name}公安局"),
    ("new area", "district ending 新区 with a stem of two or more characters",
     "{city}公安局{name}分局"),
    ("mining district", "district ending 矿区", "{city}公安局{name}分局"),
    ("short district", "district of two characters (城区, 郊区, 东区)", "{city}公安局{name}分局"),
    ("district", "any other county-level unit ending 区 but not 特区, under a city",
     "{city}公安局{stem}分局"),
    ("county", "县, 自治县, 旗, 自治旗, 县级市, 特区", "{name}公安局"),
]


def kind_of(region: Region, parent: Region | None) -> str:
    name = region.name
    if region.level == "province":
        return "municipality" if name.endswith("市") else "province"
    if region.level == "prefecture":
        return "prefecture office" if name.endswith(("地区", "盟")) else "prefecture"
    assert parent is not None
    if parent.level == "province" and not parent.name.endswith("市"):
        return "under a province"
    if name.endswith("区") and not name.endswith("特区"):
        if name.endswith("新区") and len(name) >= 4:
            return "new area"
        if name.endswith("矿区"):
            return "mining district"
        return "short district" if len(name) == 2 else "district"
    assert name.endswith(("县", "旗", "市", "特区")), name
    return "county"


def test_every_generated_organ_name_follows_the_rule_of_its_kind() -> None:
    regions = region_index()
    roster = Roster({}, regions)
    expected = {kind: template for kind, _, template in RULES}
    seen_kinds: set[str] = set()
    for region in regions.all():
        organ = roster.organ(region.code)
        if region.code.startswith(OUTSIDE_MAINLAND):
            assert organ is None, region  # never an invented organ
            continue
        assert organ is not None
        if region.code in NAME_EXCEPTIONS:
            continue
        parent = regions.get(region.parent) if region.parent else None
        kind = kind_of(region, parent)
        seen_kinds.add(kind)
        want = expected[kind].format(name=region.name, city=parent.name if parent else "",
                                     stem=region.name[:-1])
        assert organ.name == want, (region, kind)
        assert re.search("(公安厅|公安局|公安处|分局)$", organ.name)
        assert not re.search("区区|公安局公安局|自治分局", organ.name), organ.name
    assert seen_kinds == set(expected)  # the table has no dead rows


@pytest.mark.parametrize(("code", "name"), [
    ("500157", "重庆市公安局两江新区分局"), ("210113", "沈阳市公安局沈北新区分局"),
    ("310115", "上海市公安局浦东分局"), ("120116", "天津市公安局滨海分局"),
    ("441803", "清远市公安局清新分局"), ("429021", "神农架林区公安局"),
    ("610103", "西安市公安局碑林分局"), ("140109", "太原市公安局万柏林分局"),
    ("520203", "六枝特区公安局"), ("130107", "石家庄市公安局井陉矿区分局"),
    ("140303", "阳泉市公安局矿区分局"), ("140302", "阳泉市公安局城区分局"),
    ("152200", "兴安盟公安处"), ("542500", "阿里地区公安处"), ("429004", "仙桃市公安局"),
    ("150723", "鄂伦春自治旗公安局"), ("130321", "青龙满族自治县公安局"),
    ("150000", "内蒙古自治区公安厅"), ("659001", "石河子市公安局"), ("441900", "东莞市公安局"),
    ("140404", "长治市公安局上党分局"), ("110105", "北京市公安局朝阳分局"),
])
def test_organ_names_of_each_kind(code: str, name: str) -> None:
    organ = Roster({}).organ(code)
    assert organ is not None and organ.name == name


@pytest.mark.parametrize("code", ["810000", "820000", "710000"])
def test_no_organ_is_invented_outside_the_mainland(code: str) -> None:
    assert Roster({}).organ(code) is None


def test_leader_level_walks_up_the_region_tree() -> None:
    roster = Roster({})
    assert roster.organ_at("140403", "prefecture").code == "140400"  # type: ignore[union-attr]
    assert roster.organ_at("140403", "province").code == "140000"  # type: ignore[union-attr]
    # A municipality has no prefecture level: its bureau leads.
    assert roster.organ_at("110101", "prefecture").code == "110000"  # type: ignore[union-attr]


def test_roster_file_overrides_and_availability_applies(tmp_path: Path) -> None:
    default = load_roster()
    organ = default.organ("140403")
    assert organ is not None and not organ.placeholder and organ.head.name == "褚卫东"
    default.set_available("140403", "head", False)
    assert default.organ("140403").head.available is False  # type: ignore[union-attr]
    own = tmp_path / "roster.yaml"
    own.write_text("organs:\n  '140403':\n    name: 潞州分局\n    head: {name: 甲, title: 局长}\n"
                   "    deputy: {name: 乙, title: 副局长}\n    members: {}\n", encoding="utf-8")
    assert load_roster(own).organ("140403").name == "潞州分局"  # type: ignore[union-attr]
    assert load_roster(own).organ("140404").placeholder  # type: ignore[union-attr]
