"""The roster generated from the region data, and the roster file that overrides it."""

from pathlib import Path

from services.dispatch.roster import Roster, load_roster
from shared.regions import region_index


def test_an_organ_for_every_province_prefecture_and_county() -> None:
    roster = Roster({})
    regions = region_index().all()
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
