"""Telephone numbers with Google's libphonenumber (`phonenumbers`).

(Minimal version from issue 12's branch; issue 11's fuller module — display form, extensions,
full-width digits — has the same `PhoneError` and `normalise_phone`, and supersedes this one.)
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

DEFAULT_REGION = "CN"
_MAX_LENGTH = 40


class PhoneError(ValueError):
    """The text is not a telephone number."""


def normalise_phone(raw: str) -> str:
    """E.164 (+8613900001111) of a number valid in libphonenumber's metadata, read as a
    mainland number when it has no country code. `PhoneError` otherwise."""
    text = raw.strip()
    if not text or len(text) > _MAX_LENGTH:
        raise PhoneError("not a telephone number")
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except NumberParseException as exc:
        raise PhoneError("not a telephone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("not a telephone number")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)
