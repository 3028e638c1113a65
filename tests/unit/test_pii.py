"""The personal-data envelope and master keys (shared/pii.py, issue 13 §2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import pii
from shared.pii import PURGED, InvalidTag, KeyUnavailable, MasterKeys

CASE = "110101-20260101-ABC123"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8)


def report_data(name: str = "张小明", phone: str = "+8613900001111") -> dict[str, Any]:
    return {"case_id": CASE, "report": {
        "child": {"name": name, "sex": "male", "age": 7, "id_number": "11010120190101001X",
                  "photo_urls": ["http://x/photos/a.jpg"], "description": "红衣服"},
        "reporter": {"name": "张父", "phone": phone, "phone_display": "139 0000 1111"},
        "last_seen": {"region_code": "110101", "lat": 39.9, "lon": 116.4},
        "circumstances": {"kind": "missing", "notes": "邻居王某"}}}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["a", "b.c", "b.d.e", "f"]), json_values))
def test_round_trip_of_any_fields(values: dict[str, Any]) -> None:
    data: dict[str, Any] = {"keep": 1, "b": {"d": {}}}
    for path, value in values.items():
        *parents, leaf = path.split(".")
        node = data
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    fields = {"a": None, "b.c": PURGED, "b.d.e": [], "f": ""}
    key = pii.new_data_key()
    sealed = pii.seal(data, fields, CASE, key)
    assert pii.sealed_case(sealed) == CASE
    assert pii.unseal(sealed, key) == data
    for path in values:  # in the clear record each sealed field holds its marker
        *parents, leaf = path.split(".")
        node = sealed
        for name in parents:
            node = node[name]
        assert node[leaf] == fields[path]


@pytest.mark.parametrize("secret", ["张小明", "+8613900001111", "11010120190101001X", "邻居王某",
                                    "http://x/photos/a.jpg", "139 0000 1111", "红衣服"])
def test_report_fields_leave_the_clear_record(secret: str) -> None:
    sealed = pii.seal(report_data(), pii.REPORT_FIELDS, CASE, pii.new_data_key())
    assert secret not in json.dumps(sealed, ensure_ascii=False)
    assert sealed["report"]["last_seen"]["region_code"] == "110101"  # history stays clear
    assert sealed["report"]["child"]["age"] == 7


def test_without_the_key_every_personal_field_is_its_marker() -> None:
    sealed = pii.seal(report_data(), pii.REPORT_FIELDS, CASE, pii.new_data_key())
    opened = pii.unseal(sealed, None)
    assert "pii" not in opened
    assert opened["report"]["child"]["name"] == PURGED
    assert opened["report"]["child"]["id_number"] is None
    assert opened["report"]["child"]["photo_urls"] == []
    assert opened["report"]["reporter"]["phone"] == PURGED
    assert opened["report"]["last_seen"] == report_data()["report"]["last_seen"]


@pytest.mark.parametrize("tamper", [
    lambda e: {**e, "ct": pii.b64e(bytes([pii.b64d(e["ct"])[0] ^ 1]) + pii.b64d(e["ct"])[1:])},
    lambda e: {**e, "n": pii.b64e(bytes(12))},
    lambda e: {**e, "case": "110101-20260101-OTHER1"},  # moved to another case
])
def test_a_tampered_envelope_fails(tamper: Any) -> None:
    key = pii.new_data_key()
    sealed = pii.seal(report_data(), pii.REPORT_FIELDS, CASE, key)
    sealed["pii"] = tamper(sealed["pii"])
    with pytest.raises(InvalidTag):
        pii.unseal(sealed, key)


def test_another_cases_key_fails() -> None:
    sealed = pii.seal(report_data(), pii.REPORT_FIELDS, CASE, pii.new_data_key())
    with pytest.raises(InvalidTag):
        pii.unseal(sealed, pii.new_data_key())


def test_master_keys_wrap_with_the_first_and_unwrap_with_any() -> None:
    old = MasterKeys.parse(MasterKeys.generate("k1"))
    key = pii.new_data_key()
    wrapped = old.wrap(CASE, key)
    assert wrapped["kid"] == "k1" and pii.b64e(key) not in json.dumps(wrapped)
    rotated = MasterKeys.parse(f"{MasterKeys.generate('k2')},k1:{pii.b64e(old.keys['k1'])}")
    assert rotated.active == "k2"
    assert rotated.unwrap(CASE, wrapped) == key
    assert rotated.wrap(CASE, key)["kid"] == "k2"
    with pytest.raises(InvalidTag):
        old.unwrap("110101-20260101-OTHER1", wrapped)
    with pytest.raises(KeyUnavailable):
        MasterKeys.parse(MasterKeys.generate("k3")).unwrap(CASE, wrapped)


@pytest.mark.parametrize("text", ["", "k1", "k1:", ":abc", "k1:not base64!", "k1:YWJj",
                                  f"k1:{pii.b64e(bytes(32))},k1:{pii.b64e(bytes(32))}"])
def test_malformed_master_keys_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        MasterKeys.parse(text)


def test_redacted_data_holds_markers_and_nothing_to_open() -> None:
    redacted = pii.redact(report_data(), pii.REPORT_FIELDS)
    assert "pii" not in redacted and pii.sealed_case(redacted) is None
    assert "张小明" not in json.dumps(redacted, ensure_ascii=False)
    assert redacted == pii.unseal(pii.seal(report_data(), pii.REPORT_FIELDS, CASE,
                                           pii.new_data_key()), None)


def test_sealing_a_fresh_dict_in_place_seals_the_same() -> None:
    """`copy=False` (alert's intake: a dict just dumped from the model) changes and returns
    `data` itself; what it holds is what a sealed copy holds, and it opens the same."""
    key = pii.new_data_key()
    copied = pii.seal(report_data(), pii.REPORT_FIELDS, CASE, key)
    fresh = report_data()
    in_place = pii.seal(fresh, pii.REPORT_FIELDS, CASE, key, copy=False)
    assert in_place is fresh
    assert {k: v for k, v in in_place.items() if k != "pii"} == \
        {k: v for k, v in copied.items() if k != "pii"}
    assert pii.unseal(in_place, key) == pii.unseal(copied, key) == report_data()
    original = report_data()
    pii.seal(original, pii.REPORT_FIELDS, CASE, key)  # the default leaves it as it was
    assert original == report_data()
