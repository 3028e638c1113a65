"""居民身份证号码 (citizen identification number) as typed, checked against
GB 11643-1999 《公民身份号码》 with python-stdnum.

GB 11643-1999 §4: 18 characters — a 6-digit address code (GB/T 2260), an 8-digit birth date
YYYYMMDD, a 3-digit sequence code (odd for men, even for women) and a check character computed
with ISO 7064:1983 MOD 11-2 over the first 17 digits, 0–9 or X (for 10).

Accepted: spaces and hyphens between groups, full-width digits and letters (folded with NFKC),
a lower-case check letter (stored upper-case). Refused (`IdNumberError` with a stable code):
`id_format` (not 18 characters of 17 digits + digit/X), `id_checksum` (the check character is
not the one MOD 11-2 gives — a mistyped digit), `id_birth_date` (the encoded birth date is not
a real date). The address code is not checked against a code table: a child's number carries
the code of the place of birth registration, which may be newer than any table we ship, and a
wrong code is caught by the check character anyway.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from stdnum import exceptions
from stdnum.cn import ric
from stdnum.iso7064 import mod_11_2


class IdNumberError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def normalise_id_number(raw: str) -> str:
    """The 18-character number, check letter upper-cased; `IdNumberError` when it is not one."""
    text = re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", raw)).upper()
    if not re.fullmatch(r"[0-9]{17}[0-9X]", text):
        raise IdNumberError("id_format", "an ID number is 17 digits and a digit or X")
    if not mod_11_2.is_valid(text):
        raise IdNumberError("id_checksum", "the check character does not match (GB 11643 "
                            "MOD 11-2): a digit is mistyped")
    try:
        ric.get_birth_date(text)
    except exceptions.ValidationError:
        raise IdNumberError("id_birth_date", "the birth date in the ID number is not a "
                            "date") from None
    return text


def id_birth_date(number: str) -> date:
    """The birth date encoded in a normalised number (digits 7–14)."""
    return ric.get_birth_date(number)
