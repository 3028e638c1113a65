"""Photo links as operators paste them, made valid URIs (RFC 3986 §2, §3; the `xs:anyURI` type
CAP 1.2's `<resource><uri>` has).

Browsers open links that are not valid URIs: a stray `%` (`…/100%`), a second `#`, brackets in
a query (`?q=[1]`). Such a link reached the public CAP message unchanged and made it fail the
OASIS schema, so every CAP consumer could refuse the whole alert. `as_uri` encodes exactly those
characters (a `%` that starts no escape becomes `%25`; `[`, `]`, a later `#` and anything else
RFC 3986 does not allow outside the host are percent-encoded as UTF-8), so the link still
opens the same photo. Existing escapes are kept as they are.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["as_uri"]

_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3986 unreserved, sub-delims, ":" and "@" (pchar), "/" and "?" (path, query, fragment),
# and "%" of the escapes already there.
_SAFE = "-._~!$&'()*+,;=:@/?%"


def _part(text: str) -> str:
    return quote(_STRAY_PERCENT.sub("%25", text), safe=_SAFE)


def as_uri(url: str) -> str:
    """`url` (an absolute http(s) link) with its path, query and fragment percent-encoded where
    RFC 3986 requires it; a valid URI is returned unchanged."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, _part(parts.path), _part(parts.query),
                       _part(parts.fragment)))
