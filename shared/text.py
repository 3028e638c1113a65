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
- `xml_text` is applied by every XML and SVG writer to every string it emits, whatever is
  stored (older events, other producers): it drops every character XML 1.0 §2.2 `Char` does not
  allow, so no stored value can make a CAP message, the Atom feed or the spread picture
  ill-formed.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import BeforeValidator

# Line breaks of every kind (CRLF, CR, VT, FF, NEL, LINE/PARAGRAPH SEPARATOR) → "\n".
_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
# C0 except tab and newline, DEL, C1; lone surrogates; the 66 non-characters.
_UNWANTED = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}"
              for plane in range(17))
    + "]")
# What XML 1.0 (Fifth Edition) §2.2 does not allow as a character.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean_text(value: object) -> object:
    """NFC, one kind of line break, no control characters, non-characters or lone surrogates.
    Non-strings pass through unchanged (the field's own type check refuses them)."""
    if not isinstance(value, str):
        return value
    text = _UNWANTED.sub("", _BREAKS.sub("\n", value))
    return unicodedata.normalize("NFC", text)


def clean_line(value: object) -> object:
    """`clean_text` for one-line fields (names, phone, relation): breaks and tabs become a
    space."""
    text = clean_text(value)
    if not isinstance(text, str):
        return text
    return re.sub(r"[\t\n]+", " ", text)


def xml_text(value: str) -> str:
    """`value` with every character XML 1.0 cannot carry removed (escaping of <, & and quotes
    is the writer's job)."""
    return _NOT_XML.sub("", value)


# Field types: every free-text field of the report model uses one of these.
Text = Annotated[str, BeforeValidator(clean_text)]
Line = Annotated[str, BeforeValidator(clean_line)]
