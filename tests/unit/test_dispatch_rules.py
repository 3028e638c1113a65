"""The rules file: valid, every rule and task cited with words found in the cited document, and
each rule and the 博尔塔拉 overlay deciding what the documents say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.dispatch.rules import Facts, decide, load_rules
from shared.report import Kind, Subject

POLICY = load_rules()
REPO = Path(__file__).resolve().parents[2]


# The policy documents the rules cite, committed beside the rules (copied from ../shared/seeds)
# so every citation is checked on any machine, CI included.
SOURCES = REPO / "services" / "dispatch" / "sources"


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def all_citations() -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    for rules in (POLICY.base, *POLICY.overlays):
        for rule in rules.rules:
            out += [(rule.id, c.doc, c.passage, c.quote) for c in rule.sources]
    for name, task in POLICY.tasks.items():
        out += [(f"task {name}", c.doc, c.passage, c.quote) for c in task.sources]
    return out


@pytest.mark.parametrize(("what", "doc", "passage", "quote"), all_citations())
def test_every_citation_quotes_its_document(what: str, doc: str, passage: str,
                                            quote: str) -> None:
    [path] = list(SOURCES.glob(f"{doc}_*.txt"))
    assert _squash(quote) in _squash(path.read_text(encoding="utf-8")), (what, doc, passage)
    assert doc in POLICY.documents


def facts(**kw: object) -> Facts:
    base: dict[str, object] = {"region_code": "140403", "subject": Subject.child,
                               "kind": Kind.suspected_abduction, "minor": True}
    base.update(kw)
    return Facts.model_validate(base)


def test_every_report_starts_rapid_search_at_highest_priority() -> None:
    for kind in Kind:
        d = decide(POLICY, facts(kind=kind))
        assert "rapid_search" in d.mechanisms and d.priority == "highest"
        assert {"hub_interception", "release_decision", "family_contact"} <= set(d.tasks)


def test_missing_minor_is_searched_under_the_homicide_mechanism_with_dna_sampling() -> None:
    d = decide(POLICY, facts(kind=Kind.missing))
    assert d.mechanisms == ["rapid_search", "homicide_mechanism"]
    assert "dna_samples" in d.tasks
    cited = {a.rule: {(c.doc, c.passage) for c in a.sources} for a in d.applied}
    assert ("002", "§三㈡") in cited["homicide_mechanism"]


def test_runaway_and_adults_are_not_under_the_homicide_mechanism() -> None:
    assert "homicide_mechanism" not in decide(POLICY, facts(kind=Kind.runaway)).mechanisms
    woman = decide(POLICY, facts(subject=Subject.woman, minor=False))
    assert woman.mechanisms == ["rapid_search"] and woman.priority == "highest"
    assert "woman_suspected_trafficked" in [a.rule for a in woman.applied]


def test_one_head_three_duties_at_county_level() -> None:
    d = decide(POLICY, facts())
    assert d.leader_level == "county"
    assert d.duties == ["investigation", "rescue", "family_liaison"]
    assert d.supervision is None and not d.cooperation


def test_stolen_child_goes_to_the_prefecture_under_provincial_supervision() -> None:
    d = decide(POLICY, facts(kind=Kind.stolen))
    assert d.leader_level == "prefecture" and d.supervision == "province"
    [rule] = [a for a in d.applied if a.rule == "stolen_child"]
    assert ("004", "§三(一)") in {(c.doc, c.passage) for c in rule.sources}


def test_especially_serious_goes_to_the_prefecture_under_provincial_supervision() -> None:
    d = decide(POLICY, facts(especially_serious=True))
    assert d.leader_level == "prefecture" and d.supervision == "province"
    assert d.may_add_members == []


def test_bortala_overlay_lets_the_procuratorate_join_especially_serious_cases() -> None:
    d = decide(POLICY, facts(region_code="652701", especially_serious=True))
    assert d.leader_level == "prefecture" and d.may_add_members == ["procuratorate"]
    [rule] = [a for a in d.applied if a.rule == "especially_serious"]
    assert rule.origin == "6527"
    assert {(c.doc, c.passage) for c in rule.sources} == {("002", "§三㈠")}
    # Outside 6527 and for ordinary cases inside it, the base applies.
    assert decide(POLICY, facts(region_code="652701")).may_add_members == []
    assert decide(POLICY, facts(region_code="650102",
                                especially_serious=True)).may_add_members == []


def test_cross_region_report_brings_in_the_other_bureau() -> None:
    assert decide(POLICY, facts(cross_region=True)).cooperation
    [rule] = [a for a in decide(POLICY, facts(cross_region=True)).applied
              if a.rule == "cross_region"]
    assert rule.sources[0].doc == "003"


def test_a_bad_rules_file_is_refused_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    text = (REPO / "services/dispatch/rules.yaml").read_text(encoding="utf-8")
    bad.write_text(text.replace("tasks: [dna_samples]", "tasks: [no_such_task]"),
                   encoding="utf-8")
    with pytest.raises(ValueError, match="no_such_task"):
        load_rules(bad)
    bad.write_text("documents: {}\ntasks: {}\nbase: {name: x, rules: [{id: a, summary: s, "
                   "then: {}, sources: []}]}\n", encoding="utf-8")
    with pytest.raises(ValueError):
        load_rules(bad)
