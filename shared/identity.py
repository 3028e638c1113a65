"""Whether two reports are of the same child — one rule, used by dispatch (linking reports to
one case group) and notify (one alert per child at the hubs), which never import each other.

Source of the rule: issue 19 §1 and DESIGN.md "Nothing ends a search by accident": two reports
are the same child only on evidence of the child's identity — the normalised name plus the same
birth date, or the same ID number (居民身份证号, GB 11643) — and only when they are near in
time and place. The reporter's phone never links, nor do sex or age; a drill
(`exercise: true`) never links with a real report.

Identity keys are keyed hashes (HMAC-SHA256 with `Settings.identity_secret`): stored in Redis
and on the dispatch topic they cannot be brute-forced back to a name and birth date without the
secret (issue 12), and they are never returned by an API.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from shared.regions import RegionIndex
from shared.report import ReportAccepted
from shared.text import SHOWS_NOTHING

# Every character used as the separator inside transliterated (e.g. Uyghur, Kazakh, foreign)
# names, folded to U+00B7 MIDDLE DOT, the one GB 18030 / the public security name standard
# uses. NFKC already maps U+FF65 (halfwidth katakana middle dot) to U+30FB; the rest are
# listed here.
MIDDLE_DOTS = frozenset(
    "\u00b7"  # MIDDLE DOT
    "\u0387"  # GREEK ANO TELEIA
    "\u02d1"  # MODIFIER LETTER HALF TRIANGULAR COLON
    "\u16eb"  # RUNIC SINGLE PUNCTUATION
    "\u2022"  # BULLET
    "\u2027"  # HYPHENATION POINT
    "\u2219"  # BULLET OPERATOR
    "\u22c5"  # DOT OPERATOR
    "\u2e31"  # WORD SEPARATOR MIDDLE DOT
    "\u2e33"  # RAISED DOT
    "\u30fb"  # KATAKANA MIDDLE DOT
    "\uff65"  # HALFWIDTH KATAKANA MIDDLE DOT
    "\u318d"  # HANGUL LETTER ARAEA
    "\ua78f"  # LATIN LETTER SINOLOGICAL DOT
    "\U00010101"  # AEGEAN WORD SEPARATOR DOT
    "\u2981"  # Z NOTATION SPOT
    "\u2e30"  # RING POINT
    "."  # FULL STOP, and FULLWIDTH FULL STOP / ONE DOT LEADER after NFKC ("阿依努尔.买买提")
    "\u2024"  # ONE DOT LEADER
)
_DOTS = re.compile("[" + re.escape("".join(sorted(MIDDLE_DOTS))) + "]+")
# Spaces of any kind, and every character Unicode says is invisible by default
# (Default_Ignorable_Code_Point, DerivedCoreProperties.txt: soft hyphen, combining grapheme
# joiner, the Mongolian free variation selectors and vowel separator, zero-width characters,
# bidi controls, variation selectors, BOM, tags), plus the Hangul fillers and the blank
# Braille pattern, which show nothing either: "张小明" and "张小明\ufe0f" are one child.
_GAPS = re.compile(
    r"[\s\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff0-\ufff8"
    r"\U0001bca0-\U0001bca3\U0001d173-\U0001d17a" + SHOWS_NOTHING + "]+")
# Words written where a child's own name is not known (a newborn "王芳之女", "男婴", "无名氏",
# an anonymised "张某"): they name no one, so they are never evidence that two reports are
# of one child, and they contradict no name (issue 19 §1: twins reported as "王芳之女").
_PLACEHOLDER_NAMES = frozenset({
    "无名", "无名氏", "未取名", "未起名", "未命名", "不详", "不知", "不知道", "未知", "无", "暂无",
    "待定", "男婴", "女婴", "婴儿", "婴", "新生儿", "宝宝", "宝贝", "男孩", "女孩", "小孩",
    "孩子", "儿童", "男童", "女童", "unknown", "none", "n/a", "na", "baby", "child"})
_PLACEHOLDER = re.compile(
    r".*[之的](?:女|子|儿|儿子|女儿|孙|孙子|孙女|婴|男婴|女婴|孩子?)\d*"  # 王芳之女, 李四的儿子
    r"|.*某.*"  # 张某, 某某
    r"|(?:男|女)?婴儿?\d*|(?:无名|未知|不详)\w*")

Evidence = Literal["name_birth_date", "id_number"]


def normalise_name(name: str) -> str:
    """The comparable form of a child's name: Unicode NFKC (full-width letters and digits
    become ASCII), every middle-dot variant folded to U+00B7 (runs of them to one), every space
    and invisible format character removed, Latin letters case-folded, dots at the ends
    dropped. "阿依努尔・买买提" and "阿依努尔 · 买买提" both give "阿依努尔·买买提"."""
    # Dots folded before NFKC too: it maps some of them (U+318D) to letters.
    text = unicodedata.normalize("NFKC", _DOTS.sub("\u00b7", name))
    text = _DOTS.sub("\u00b7", _GAPS.sub("", text)).strip("\u00b7")
    return unicodedata.normalize("NFKC", text.casefold())


# The sex a placeholder names, when it names one (王芳之女: a daughter; 男婴: a boy).
_PLACEHOLDER_SEX = re.compile(r".*?(孙女|女儿|女婴|女孩|女童|女|孙子|儿子|男婴|男孩|男童|子|孙)\d*")
_SEX_WORD = {**dict.fromkeys(("孙女", "女儿", "女婴", "女孩", "女童", "女"), "female"),
             **dict.fromkeys(("孙子", "儿子", "男婴", "男孩", "男童", "子", "孙"), "male")}


def is_placeholder_name(name: str) -> bool:
    """Whether `name` stands where a child's own name is not known (_PLACEHOLDER_NAMES:
    "王芳之女", "男婴", "无名氏", "张某"), or is empty once normalised."""
    return _placeholder(normalise_name(name))


def _placeholder(norm: str) -> bool:
    """is_placeholder_name of a name already normalised."""
    return not norm or norm in _PLACEHOLDER_NAMES or _PLACEHOLDER.fullmatch(norm) is not None


def normalise_id_number(value: str) -> str:
    """GB 11643 number in its comparable form: NFKC, no spaces, check character X upper-case."""
    return _GAPS.sub("", unicodedata.normalize("NFKC", value)).upper()


class ChildIdentity(BaseModel):
    """What identifies a child in a report (everything else — reporter, sex, age — does not)."""

    name: str
    birth_date: date | None = None
    id_number: str | None = None
    exercise: bool = False

    def evidence_with(self, other: ChildIdentity) -> Evidence | None:
        """The evidence that `other` is the same child, or None. A drill and a real report
        never match; a name without a birth date on either side never matches, nor does a
        placeholder name; evidence that the rest contradicts (`contradiction`) does not
        count."""
        if self.exercise != other.exercise:
            return None
        # Matching and contradicting evidence as `contradiction` weighs it, on the unkeyed
        # forms (the keys are these, hashed).
        mine, theirs = self._evidence(), other._evidence()
        for kind, value in theirs:
            if (kind, value) in mine:
                if contradiction(kind, self.name, [v for _, v in mine], other, theirs):
                    return None
                return kind
        return None

    def _evidence(self) -> list[tuple[Evidence, str]]:
        """The comparable forms of the evidence this child carries, one per kind."""
        scope = "exercise" if self.exercise else "actual"
        raw: list[tuple[Evidence, str]] = []
        if self.id_number:
            raw.append(("id_number", f"{scope}|id|{normalise_id_number(self.id_number)}"))
        name = normalise_name(self.name)
        if self.birth_date is not None and not _placeholder(name):
            raw.append(("name_birth_date", f"{scope}|nb|{name}|{self.birth_date.isoformat()}"))
        return raw

    def keyed(self, secret: str) -> list[tuple[Evidence, str]]:
        """The keyed hashes (hex HMAC-SHA256, 32 chars) under which this child is claimed, one
        per kind of evidence it carries, with that kind. Drill and real keys differ, so they
        never meet."""
        return [(kind, hmac.new(secret.encode(), k.encode(), hashlib.sha256).hexdigest()[:32])
                for kind, k in self._evidence()]

    def keys(self, secret: str) -> list[str]:
        return [key for _, key in self.keyed(secret)]


class Sighting(BaseModel):
    """When and where a report says the child was last seen."""

    at: datetime
    lat: float
    lon: float


class LinkEvidence(BaseModel):
    """Why two reports were taken for one child: shown to the commander with the link."""

    rule: Evidence
    distance_km: float = Field(description="between the two last-seen places, km")
    hours_apart: float = Field(description="between the two last-seen times, hours")
    names: list[str] = Field(description="the child's name as each report gave it")
    birth_date: date | None = None


def near(first: Sighting, second: Sighting, max_km: float,
         window: timedelta) -> tuple[float, float] | None:
    """(km apart, hours apart) when the two last sightings are at most `max_km` and `window`
    apart; None otherwise."""
    km = RegionIndex.distance_km(first.lat, first.lon, second.lat, second.lon)
    apart = abs(first.at - second.at)
    if km > max_km or apart > window:
        return None
    return round(km, 1), round(apart.total_seconds() / 3600, 2)


def link_evidence(rule: Evidence, first: ChildIdentity, first_seen: Sighting,
                  second: ChildIdentity, second_seen: Sighting, max_km: float,
                  window: timedelta) -> LinkEvidence | None:
    """The evidence shown with a link, when the identity matched by `rule` and the sightings are
    near; None when they are too far apart in time or place to be one child."""
    apart = near(first_seen, second_seen, max_km, window)
    if apart is None:
        return None
    return LinkEvidence(rule=rule, distance_km=apart[0], hours_apart=apart[1],
                        names=[first.name, second.name],
                        birth_date=second.birth_date if rule == "name_birth_date" else None)


def contradiction(matched: Evidence, first_name: str, first_keys: list[str],
                  second: ChildIdentity, second_keyed: list[tuple[Evidence, str]]) -> str | None:
    """Why a report that shares one piece of evidence with an earlier child is still another
    child, or None. `matched` is the evidence shared; the earlier child is known by its name
    and its keys (`first_keys`: ChildIdentity.keys of the report that claimed it, at most one
    per kind; only compared for equality, so evidence_with passes the unkeyed forms); the
    new report by its identity and `second_keyed` (ChildIdentity.keyed).

    - Shared ID number, names that differ ("name"): twins, one report carrying the other's
      number copied from the household register. A name inside the other is one child written
      short (乐乐 and 张乐乐); a placeholder (is_placeholder_name) contradicts nothing but a
      placeholder of the other sex (王芳之女 and 王芳之子: newborn twins).
    - Shared name and birth date, ID numbers that differ ("id_number"): twins with one name
      given twice, or two children of one name born the same day.

    Contradicted evidence never links (DESIGN.md "Nothing ends a search by accident": a wrong
    link lets one child's found end the other's search; two searches for one child end
    nothing, and the commander can tie them)."""
    if matched == "id_number":
        a, b = normalise_name(first_name), normalise_name(second.name)
        if _placeholder(a) or _placeholder(b):
            sexes = {_SEX_WORD.get(m.group(1)) for m in (_PLACEHOLDER_SEX.fullmatch(a),
                                                        _PLACEHOLDER_SEX.fullmatch(b)) if m}
            return "name" if sexes == {"female", "male"} else None  # 王芳之女 / 王芳之子
        a, b = a.replace("\u00b7", ""), b.replace("\u00b7", "")  # 阿依努尔 买买提: one name
        return "name" if a not in b and b not in a else None
    mine = dict(second_keyed)
    their_ids = [k for k in first_keys if k != mine.get("name_birth_date")]
    if mine.get("id_number") and their_ids and mine["id_number"] not in their_ids:
        return "id_number"
    return None


def same_child(first: ChildIdentity, first_seen: Sighting, second: ChildIdentity,
               second_seen: Sighting, max_km: float, window: timedelta) -> LinkEvidence | None:
    """The evidence that two reports are of one child (identity matches, last-seen places at
    most `max_km` apart, times at most `window` apart), or None: they are separate children."""
    rule = first.evidence_with(second)
    if rule is None:
        return None
    return link_evidence(rule, first, first_seen, second, second_seen, max_km, window)


def identity_of(accepted: ReportAccepted) -> ChildIdentity:
    child = accepted.report.child
    return ChildIdentity(name=child.name, birth_date=child.birth_date,
                         id_number=child.id_number, exercise=accepted.report.exercise)


def sighting_of(accepted: ReportAccepted) -> Sighting:
    seen = accepted.report.last_seen
    return Sighting(at=seen.at, lat=seen.lat, lon=seen.lon)
