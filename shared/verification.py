"""Contract of alerts anyone can verify (issue 17): the names other parties depend on — the
signature header of JSON pushes, the JWKS path, the verification page and API — and the
alert's short code (what a person reads off a poster or a forwarded message and types in).

The short code is derived from the alert id (`short_code`), so notify, dispatch's preview and
any tool agree on it without a lookup: 10 symbols of Crockford's base32 alphabet (no I, L, O,
U: nothing a reader can confuse), shown as two groups of five ("7K3QZ-M0C4D"). `parse_code`
accepts what people type: lower case, spaces, dashes, and O/I/L for 0/1/1 (Crockford's decoding
rule, https://www.crockford.com/base32.html)."""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum

SIGNATURE_HEADER = "homeward-signature"  # detached JWS (ES256, `kid` header) of the JSON body
JWKS_PATH = "/.well-known/jwks.json"
VERIFY_PAGE = "/verify"
VERIFY_API = "/api/v1/verify/{code}"
SIGNATURE_ALGORITHM = "ES256"


class VerifyStatus(StrEnum):
    active = "active"  # a genuine alert of this platform, still searching
    ended = "ended"  # genuine, but the child was found (or the report withdrawn): stop sharing
    unknown = "unknown"  # not an alert of this platform


class KeyState(StrEnum):
    """Rotation of a signing key: published in the JWKS before it signs, then active (the one
    key that signs), then retired (still listed so that what it signed still verifies)."""

    published = "published"
    active = "active"
    retired = "retired"


ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
CODE_LENGTH = 10
_TYPED = str.maketrans({"O": "0", "I": "1", "L": "1"})


def short_code(alert_id: str) -> str:
    """The alert's short code, 10 symbols without separator (50 bits of SHA-256 of the id)."""
    number = int.from_bytes(hashlib.sha256(alert_id.encode()).digest()[:8], "big") >> 14
    symbols = []
    for _ in range(CODE_LENGTH):
        number, digit = divmod(number, 32)
        symbols.append(ALPHABET[digit])
    return "".join(reversed(symbols))


def display_code(code: str) -> str:
    """"7K3QZM0C4D" -> "7K3QZ-M0C4D" (how texts and posters print it)."""
    return f"{code[:5]}-{code[5:]}"


def parse_code(typed: str) -> str | None:
    """The canonical code from what a person typed, or None if it cannot be one."""
    code = re.sub(r"[\s\-_.]", "", typed.upper()).translate(_TYPED)
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def verify_url(base_url: str, code: str) -> str:
    """The verification page of one code, what the QR code and every public text point to."""
    return f"{base_url.rstrip('/')}{VERIFY_PAGE}?code={display_code(code)}"
