"""The child-identity rule (shared/identity.py) as a table, and its properties (hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.identity import (
    MIDDLE_DOTS,
    ChildIdentity,
    Sighting,
    contradiction,
    is_placeholder_name,
    normalise_name,
    same_child,
)

SECRET = "test-identity-secret-0123456789"
BORN = date(2019, 5, 1)
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
HERE = Sighting(at=NOW, lat=36.19, lon=113.11)
NEARBY = Sighting(at=NOW + timedelta(minutes=10), lat=36.21, lon=113.13)
WINDOW = timedelta(hours=24)


def child(name: str, born: date | None = BORN, id_number: str | None = None,
          exercise: bool = False) -> ChildIdentity:
    return ChildIdentity(name=name, birth_date=born, id_number=id_number, exercise=exercise)


# (first, second, evidence expected or None)
TABLE = [
    # same child, separator variants of a transliterated name
    (child("阿依努尔·买买提"), child("阿依努尔・买买提"), "name_birth_date"),  # U+00B7 / U+30FB
    (child("阿依努尔·买买提"), child("阿依努尔‧买买提"), "name_birth_date"),  # U+2027
    (child("阿依努尔·买买提"), child("阿依努尔•买买提"), "name_birth_date"),  # U+2022
    (child("阿依努尔·买买提"), child("阿依努尔･买买提"), "name_birth_date"),  # U+FF65
    (child("阿依努尔·买买提"), child("阿依努尔ˑ买买提"), "name_birth_date"),  # U+02D1
    (child("阿依努尔·买买提"), child("阿依努尔·买买提"), "name_birth_date"),  # U+0387
    (child("阿依努尔·买买提"), child("阿依努尔᛫买买提"), "name_birth_date"),  # U+16EB
    (child("阿依努尔·买买提"), child("阿依努尔⸱买买提"), "name_birth_date"),  # U+2E31
    (child("阿依努尔·买买提"), child("阿依努尔ㆍ买买提"), "name_birth_date"),  # U+318D
    (child("阿依努尔·买买提"), child("阿依努尔⋅买买提"), "name_birth_date"),  # U+22C5
    (child("阿依努尔·买买提"), child("阿依努尔∙买买提"), "name_birth_date"),  # U+2219
    (child("阿依努尔·买买提"), child("阿依努尔.买买提"), "name_birth_date"),  # ASCII full stop
    (child("阿依努尔·买买提"), child("阿依努尔．买买提"), "name_birth_date"),  # U+FF0E
    (child("阿依努尔·买买提"), child("阿依努尔 · 买买提"), "name_birth_date"),  # spaces around
    (child("阿依努尔·买买提"), child("阿依努尔··买买提"), "name_birth_date"),  # doubled dot
    # full-width letters, spaces, case, invisible characters
    (child("Zhang Xiaoming"), child("ＺＨＡＮＧ　ＸＩＡＯＭＩＮＧ"), "name_birth_date"),
    (child("张小明"), child("张 小 明"), "name_birth_date"),
    (child("张小明"), child("张\u200b小明"), "name_birth_date"),
    # every default-ignorable character, the Hangul fillers and the blank Braille pattern
    *[(child("张小明"), child(f"张小明{c}"), "name_birth_date") for c in (
        "\ufe0f", "\ufe00", "\U000e0100", "\u034f", "\u180e", "\u180b", "\u3164", "\u115f",
        "\uffa0", "\u2800", "\U000e0041", "\U0001d173", "\u2066", "\u061c")],
    (child("张小明"), child("张小明\t"), "name_birth_date"),
    # ID number: the same child where the name is written the same or short
    (child("张小明", id_number="14040320190501123X"),
     child("张小明", born=None, id_number="14040320190501123x"), "id_number"),
    (child("张乐乐", id_number="14040320190501123X"),
     child("乐乐", born=None, id_number="14040320190501123X"), "id_number"),
    (child("张乐乐", id_number="14040320190501123X"),
     child("王芳之女", born=None, id_number="14040320190501123X"), "id_number"),
    (child("王芳之女", id_number="14040320190501123X"),
     child("王芳的女儿", born=None, id_number="14040320190501123X"), "id_number"),
    (child("阿依努尔·买买提", id_number="14040320190501123X"),
     child("阿依努尔 买买提", born=None, id_number="14040320190501123X"), "id_number"),
    (child("张小明", id_number="14040320190501123X"),
     child("张小明", id_number="１４０４０３２０１９０５０１１２３Ｘ"), "id_number"),
    # siblings: one family, different names and birth dates
    (child("张小明"), child("张小红", born=date(2017, 3, 2)), None),
    (child("张小明"), child("张小刚", born=date(2021, 8, 9)), None),
    # twins: the same birth date, different names
    (child("李大宝"), child("李二宝"), None),
    # the same name, another birth date: another child
    (child("张小明"), child("张小明", born=date(2018, 5, 1)), None),
    # no birth date on one side: a name alone never links
    (child("张小明"), child("张小明", born=None), None),
    (child("张小明", born=None), child("张小明", born=None), None),
    # different ID numbers: never by ID (but name + birth date still decide)
    (child("李大宝", id_number="140403201905011234"),
     child("李二宝", id_number="140403201905011242"), None),
    # drill vs real: never
    (child("张小明", exercise=True), child("张小明"), None),
    (child("张小明", id_number="14040320190501123X", exercise=True),
     child("张小明", id_number="14040320190501123X"), None),
    # drill and drill: the same rule
    (child("张小明", exercise=True), child("张 小明", exercise=True), "name_birth_date"),
]


# One piece of evidence shared, another contradicting it (shared.identity.contradiction):
# never the same child. (first, second, what contradicts)
CONTRADICTED = [
    # twins: one report carries the other's ID number (copied from the household register)
    (child("张乐乐", id_number="14040320190501123X"),
     child("张欢欢", id_number="14040320190501123X"), "name"),
    (child("李大宝", id_number="14040320190501123X"),
     child("李二宝", born=None, id_number="14040320190501123X"), "name"),
    # a name written otherwise with the same number: two searches, never one ended by the other
    (child("张小明", id_number="14040320190501123X"),
     child("张晓明", born=None, id_number="14040320190501123X"), "name"),
    # newborn twins under placeholders of either sex, one number copied
    (child("王芳之女", id_number="14040320190501123X"),
     child("王芳之子", id_number="14040320190501123X"), "name"),
    (child("女婴", id_number="14040320190501123X"),
     child("男婴1", id_number="14040320190501123X"), "name"),
    # two children of one name born the same day, each with an ID number of their own
    (child("张伟", id_number="140403201905011234"),
     child("张伟", id_number="140403201905011242"), "id_number"),
]

# Placeholders where a child's own name is not known are no evidence (newborn twins).
PLACEHOLDERS = ["王芳之女", "李四的儿子", "男婴", "女婴2", "无名氏", "张某", "某某", "未起名",
                "新生儿", "宝宝", "孩子", "unknown", "Baby"]


@pytest.mark.parametrize(("first", "second", "expected"), TABLE)
def test_identity_table(first: ChildIdentity, second: ChildIdentity,
                        expected: str | None) -> None:
    assert first.evidence_with(second) == expected
    assert second.evidence_with(first) == expected  # symmetric
    shared_keys = set(first.keys(SECRET)) & set(second.keys(SECRET))
    assert bool(shared_keys) == (expected is not None)  # the keys say what the rule says


@pytest.mark.parametrize(("first", "second", "why"), CONTRADICTED)
def test_contradicted_evidence_is_another_child(first: ChildIdentity, second: ChildIdentity,
                                               why: str) -> None:
    assert first.evidence_with(second) is None
    assert second.evidence_with(first) is None
    # what dispatch and notify see: the key the claim matched, and the earlier child's keys
    mine, theirs = dict(first.keyed(SECRET)), second.keyed(SECRET)
    matched = next(kind for kind, key in theirs if mine.get(kind) == key)
    assert contradiction(matched, first.name, first.keys(SECRET), second, theirs) == why
    assert contradiction(matched, second.name, second.keys(SECRET), first,
                         first.keyed(SECRET)) == why


@pytest.mark.parametrize("name", PLACEHOLDERS)
def test_a_placeholder_name_is_no_evidence(name: str) -> None:
    assert is_placeholder_name(name)
    a, b = child(name, id_number="140403201905011234"), child(name, id_number="140403201905011242")
    assert a.evidence_with(b) is None and child(name).evidence_with(child(name)) is None
    assert [kind for kind, _ in a.keyed(SECRET)] == ["id_number"]


@pytest.mark.parametrize("name", ["张伟", "张婴宁", "阿依努尔·买买提", "Zhang Wei", "王女"])
def test_a_name_is_no_placeholder(name: str) -> None:
    assert not is_placeholder_name(name)


def test_near_in_time_and_place() -> None:
    a, b = child("阿依努尔·买买提"), child("阿依努尔・买买提")
    evidence = same_child(a, HERE, b, NEARBY, 50, WINDOW)
    assert evidence is not None and evidence.rule == "name_birth_date"
    assert 0 < evidence.distance_km < 5 and evidence.hours_apart == pytest.approx(0.17, abs=0.01)
    assert evidence.names == ["阿依努尔·买买提", "阿依努尔・买买提"]
    far = Sighting(at=NOW, lat=32.05, lon=118.8)  # Nanjing, ~650 km
    assert same_child(a, HERE, b, far, 50, WINDOW) is None
    late = Sighting(at=NOW + timedelta(hours=30), lat=36.19, lon=113.11)
    assert same_child(a, HERE, b, late, 50, WINDOW) is None


def test_keys_are_keyed_hashes() -> None:
    a = child("张小明", id_number="14040320190501123X")
    keys = a.keys(SECRET)
    assert len(keys) == 2 and all(len(k) == 32 for k in keys)
    assert a.keys("another-secret-0123456789") != keys  # without the secret: other keys
    assert not any("张小明" in k or "2019" in k for k in keys)
    assert [kind for kind, _ in a.keyed(SECRET)] == ["id_number", "name_birth_date"]


_names = st.text(st.characters(categories=["Lo", "Lu", "Ll"]), min_size=1, max_size=8)


@given(_names, _names, st.sampled_from(sorted(MIDDLE_DOTS)), st.sampled_from(sorted(MIDDLE_DOTS)),
       st.sampled_from(["", " ", "\u3000", "\u00a0"]))
def test_any_separator_and_spacing_is_the_same_child(
        given_name: str, family: str, dot1: str, dot2: str, space: str) -> None:
    a = child(f"{given_name}{dot1}{family}")
    b = child(f"{given_name}{space}{dot2}{space}{family}")
    assume(not is_placeholder_name(a.name))  # 张某, "None": no one's name, no evidence
    assert normalise_name(a.name) == normalise_name(b.name)
    assert a.evidence_with(b) == "name_birth_date"
    assert a.keys(SECRET) == b.keys(SECRET)


@given(_names, st.dates(min_value=date(2008, 1, 1), max_value=date(2026, 1, 1)),
       st.dates(min_value=date(2008, 1, 1), max_value=date(2026, 1, 1)), st.booleans())
def test_another_birth_date_or_a_drill_is_never_the_same_child(
        name: str, born1: date, born2: date, exercise: bool) -> None:
    a = child(name, born=born1)
    b = child(name, born=born2, exercise=exercise)
    same = born1 == born2 and not exercise and not is_placeholder_name(name)
    assert (a.evidence_with(b) is not None) == same
    assert bool(set(a.keys(SECRET)) & set(b.keys(SECRET))) == same


@given(st.text(max_size=20))
def test_normalising_twice_changes_nothing(name: str) -> None:
    once = normalise_name(name)
    assert normalise_name(once) == once
