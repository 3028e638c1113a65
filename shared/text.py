"""Free text as people paste it, made safe to store and to print in XML and SVG.

Two separate guarantees (issue 11 §5):

- `clean_text` is applied to every free-text field of a report or tip on the way in: the text
  is NFC-normalised (Unicode Standard Annex #15), line breaks of every kind become "\\n", and
  C0/C1 control characters other than tab and newline, Unicode non-characters and lone
  surrogates are **removed**. Removing rather than refusing: these characters carry nothing a
  person can see or mean (a word processor's U+000B "line break" is the usual culprit, pasted
  by a call-taker under time pressure), so refusing would only make an operator retype a
  description during an emergency; the break-like ones are kept as the line break they stood
  for.
  Also **removed**: the invisible format characters that change how the text around them is
  shown or searched (`_INVISIBLE_CHARS`): the bidirectional embeddings, overrides and isolates
  (U+202A–U+202E, U+2066–U+2069: an unclosed U+202E after a child's name shows everything
  after it reversed — the contact number, the check code, the link — on every screen that
  applies the Unicode Bidirectional Algorithm, UAX #9 §2.2), the direction marks (U+200E,
  U+200F, U+061C), zero-width space, word joiner and BOM (U+200B, U+2060, U+FEFF: a plate
  `晋D·1\u200b2345` is no longer found by `晋D·12345`), the invisible operators and
  deprecated format characters (U+2061–U+2064, U+206A–U+206F), the interlinear annotation
  characters (U+FFF9–U+FFFB) and the soft hyphen (U+00AD). Kept: the joiners U+200C and U+200D
  (emoji sequences and Indic/Persian scripts need them), the Mongolian vowel separator U+180E,
  variation selectors and tag characters (flag sequences).
- `xml_text` is applied by every XML and SVG writer to every string it emits, whatever is
  stored (older events, other producers): it drops every character XML 1.0 §2.2 `Char` does not
  allow, so no stored value can make a CAP message, the Atom feed or the spread picture
  ill-formed, and the invisible characters above, so a value stored before they were
  removed at input does not reorder a public message either.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

import regex
from pydantic import BeforeValidator, ValidationInfo

# Line breaks of every kind (CRLF, CR, VT, FF, NEL, LINE/PARAGRAPH SEPARATOR) → "\n".
_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
# Invisible format characters that reorder or split what a person reads (module docstring).
_INVISIBLE_CHARS = ("\u00ad\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
                    "\ufeff\ufff9-\ufffb")
# C0 except tab and newline, DEL, C1; lone surrogates; the 66 non-characters; the invisible
# ones: removed in one pass.
_UNWANTED = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef" + _INVISIBLE_CHARS
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}"
              for plane in range(17))
    + "]")
# What XML 1.0 (Fifth Edition) §2.2 does not allow as a character, and the invisible ones.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
                      f"|[{_INVISIBLE_CHARS}]")


def clean_text(value: object) -> object:
    """NFC, one kind of line break, no control characters, non-characters, lone surrogates or
    invisible direction and format characters (module docstring). Non-strings pass through
    unchanged (the field's own type check refuses them)."""
    if not isinstance(value, str):
        return value
    text = _UNWANTED.sub("", _BREAKS.sub("\n", value))
    return unicodedata.normalize("NFC", text)


# What shows nothing by itself, beyond spaces, controls, format characters and lone marks:
# the rest of Default_Ignorable_Code_Point (DerivedCoreProperties.txt: U+034F, U+115F, U+1160,
# U+17B4, U+17B5, U+180B–U+180F, U+3164, U+FFA0, variation selectors, tags) and the blank
# Braille pattern U+2800. Also used by shared.identity to compare names.
SHOWS_NOTHING = ("\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f"
                 "\uffa0\U000e0000-\U000e0fff")
_SHOWS_NOTHING = re.compile(f"[{SHOWS_NOTHING}]")


def has_visible(text: str) -> bool:
    """Whether `text` has a character a person can see: not a space, control, format
    character (category Z*, C*), a mark alone (M*), nor one of SHOWS_NOTHING."""
    return any(unicodedata.category(c)[0] not in "ZCM" and not _SHOWS_NOTHING.match(c)
               for c in text)


def clean_line(value: object, stored: bool = False) -> object:
    """`clean_text` for one-line fields (names, phone, relation): breaks and tabs become a
    space. A value that is not empty but shows nothing (spaces, U+3164 HANGUL FILLER, U+200D,
    a tag character: `has_visible`) is refused on input: a child's name of U+3164 would publish
    "儿童失踪协查：" and a blank poster. Not a value read back from storage (validation
    context {"stored": True}: a report or subscriber accepted before this rule is never
    refused by it: `stored`)."""
    text = clean_text(value)
    if not isinstance(text, str):
        return text
    if text and not stored and not has_visible(text):
        raise ValueError("has no visible character")
    return re.sub(r"[\t\n]+", " ", text)


def xml_text(value: str) -> str:
    """`value` with every character XML 1.0 cannot carry removed, and the invisible direction
    and format characters (escaping of <, & and quotes is the writer's job)."""
    return _NOT_XML.sub("", value)


def clean_block(value: object, stored: bool = False) -> object:
    """`clean_text` for text that may run over lines (a description, a tip, a reason for the
    timeline): a value of more than white space that shows nothing (`has_visible`: U+3164
    HANGUL FILLER, U+200D, a blank Braille pattern, a lone combining mark) is refused on
    input, as `clean_line` refuses it: a public tip of U+3164 alone would be filed and pushed
    to the case leader as "…在太原站。ㅤ 请在指挥台研判。", a reason of it leaves a blank line
    in the case's timeline. White space alone is left to the model (stripped: an optional
    field is then empty, a required one too short). `stored`: as in clean_line."""
    text = clean_text(value)
    if isinstance(text, str) and text.strip() and not stored and not has_visible(text):
        raise ValueError("has no visible character")
    return text


# Validation context of a value read back from storage (a log, Redis): rules added since it was
# accepted do not refuse it (shared.report.ReportAccepted, notify's subscriber records).
STORED = {"stored": True}


def _clean_block(value: object, info: ValidationInfo) -> object:
    return clean_block(value, info.context == STORED)


def _clean_line(value: object, info: ValidationInfo) -> object:
    return clean_line(value, info.context == STORED)


# Field types: every free-text field of the report model uses one of these.
Text = Annotated[str, BeforeValidator(_clean_block)]
Line = Annotated[str, BeforeValidator(_clean_line)]


# One user-perceived character (an extended grapheme cluster, Unicode Standard Annex #29): a
# flag, an emoji with its skin tone or its ZWJ family, a Tibetan stack, a letter and its marks.
_GRAPHEME = regex.compile(r"\X")


def cut(text: str, limit: int, mark: str = "…") -> str:
    """`text` in at most `limit` characters (code points, as the channels and the models
    count): unchanged when it fits, else shortened to whole user-perceived characters (UAX #29
    extended grapheme clusters: never half a flag 🇨🇳, a ZWJ family without its last member, an
    emoji without its skin tone, a Tibetan stack without its subjoined letters) followed by
    `mark`. An empty string when not even `mark` fits."""
    if len(text) <= limit:
        return text
    room = limit - len(mark)
    if room < 0:
        return ""
    kept = 0
    for match in _GRAPHEME.finditer(text):  # lazily: stops at the first cluster past room
        if match.end() > room:
            break
        kept = match.end()
    return text[:kept] + mark


def cut_bytes(text: str, max_bytes: int, mark: str = "…") -> str:
    """`text` in at most `max_bytes` of UTF-8 (a channel that counts bytes): unchanged when it
    fits, else whole user-perceived characters (as `cut`) followed by `mark`."""
    if len(text.encode()) <= max_bytes:
        return text
    room = max_bytes - len(mark.encode())
    if room < 0:
        return ""
    kept, used = 0, 0
    for match in _GRAPHEME.finditer(text):
        size = len(match.group().encode())
        if used + size > room:
            break
        kept, used = match.end(), used + size
    return text[:kept] + mark
