"""Telephone numbers as people say and type them, parsed with Google's libphonenumber
(`phonenumbers`), the one place every service turns a typed number into its normal form.

Accepted: any number libphonenumber's metadata knows as valid, written with any separators
(spaces, hyphens, dots and middle dots, brackets), full-width digits, `+86`/`0086`, a mainland
landline with its area code (0355-202-1234, (010) 8888 6666), an extension after
转/分机/ext/x/# or a trailing "-801" on a landline (0355-202-1234-801), and numbers of Hong
Kong, Macau, Taiwan or anywhere else given with their country code (+852…, 00852…, or 852…
when the mainland reading is not a number).
A number without a country code is read as a mainland number (region `CN`).

Refused (`PhoneError`): what is plainly not a phone number — no digits, too short or long, or
a number no numbering plan assigns (e.g. 12345, 23800000000).

Normal form: `e164` (+8613900001111) is what is stored, matched and dialled by machines;
`display` is what a mainland operator reads and dials — the national form for a mainland
number (139 0000 1111, 0355 202 1234), the international form otherwise (+852 9123 4567); an
extension is shown as " 转 801".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

DEFAULT_REGION = "CN"
# Extension markers people write: 转 (轉), 分机 (分機), ext(.), x, #.
_EXTENSION = re.compile(r"\s*(?:转|轉|分机|分機|ext\.?|x|#)\s*(\d{1,6})\s*$", re.IGNORECASE)
# A landline written with its extension after a last hyphen: 0355-1234567-801.
# The landline's own digits may be grouped with hyphens too: 0355-202-1234-801.
_TRAILING_EXTENSION = re.compile(r"^(0\d{2,3}[\s-]*\d[\d\s-]{5,9}\d)-(\d{1,6})$")
# Middle dots people group digits with (139·0000·1111), read as the spaces they stand for.
_DOT_BETWEEN_DIGITS = re.compile(r"(?<=\d)[·・•‧](?=\d)")
_MAX_LENGTH = 40


class PhoneError(ValueError):
    """The text is not a telephone number."""


@dataclass(frozen=True, slots=True)
class Phone:
    e164: str  # +8613900001111
    extension: str  # "" or digits
    display: str  # 139 0000 1111 / 010 8888 6666 转 801 / +852 9123 4567
    region: str  # ISO 3166 alpha-2 of the number's plan: CN, HK, MO, TW, …


def _parse(text: str, extension: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except NumberParseException:
        return None
    if extension and not number.extension:
        number.extension = extension
    return number if phonenumbers.is_valid_number(number) else None


def parse_phone(raw: str) -> Phone:
    """The normal form of a typed telephone number; `PhoneError` when it is not one."""
    text = unicodedata.normalize("NFKC", raw).strip()  # full-width digits, ＋, －
    text = _DOT_BETWEEN_DIGITS.sub(" ", text)
    if not text or len(text) > _MAX_LENGTH or not any(c.isdigit() for c in text):
        raise PhoneError("not a telephone number")
    extension = ""
    if found := _EXTENSION.search(text):
        extension, text = found.group(1), text[: found.start()]
    number = _parse(text, extension)
    if number is None and not extension and (found := _TRAILING_EXTENSION.match(text)):
        number = _parse(found.group(1), found.group(2))
    digits = re.sub(r"\D", "", text)
    if number is None and not text.startswith(("+", "0")):
        number = _parse("+" + digits, extension)  # 852 9123 4567: a country code without +
    if number is None:
        raise PhoneError("not a telephone number")
    region = phonenumbers.region_code_for_number(number) or ""
    ext = number.extension or ""
    number.extension = None
    style = (PhoneNumberFormat.NATIONAL if region == DEFAULT_REGION
             else PhoneNumberFormat.INTERNATIONAL)
    display = phonenumbers.format_number(number, style) + (f" 转 {ext}" if ext else "")
    return Phone(e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
                 extension=ext, display=display, region=region)


def normalise_phone(raw: str) -> str:
    """E.164 of a typed number (extension dropped): the form duplicate matching and message
    gateways use. `PhoneError` when it is not a number."""
    return parse_phone(raw).e164


def display_phone(value: str) -> str:
    """The display form of a stored number (E.164 or as typed); text that is not a number (a
    placeholder such as 0000-140403-01) is returned as it is."""
    try:
        return parse_phone(value).display
    except PhoneError:
        return value


def stored_phone(value: str) -> str:
    """E.164 of a number from a roster or an older record, or the text unchanged when it is not
    a number (placeholders of generated organs are never dialled)."""
    try:
        return parse_phone(value).e164
    except PhoneError:
        return value
