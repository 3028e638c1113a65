"""The project's one exception hierarchy (as httpx keeps one exceptions module).

Every error Homeward raises on purpose derives from `HomewardError`, which carries what an HTTP
answer needs; shared.web_errors.install_error_handlers maps the whole hierarchy to HTTP in one
place: `{"error": {"code", "message", "field"?}}` with `status`, the message taken from
shared.i18n by `code` in the caller's language. A use case raises the error of its kind; an api
module only catches one when it must say something more specific than the use case can.

    HomewardError                  500 internal_error
    ├── Refused                    a request or command the rules refuse (4xx, from the caller)
    │   ├── NotFound               404 not_found
    │   ├── Forbidden              403 forbidden
    │   ├── Conflict               409 conflict
    │   └── InvalidInput           422 invalid (names the field)
    └── Unavailable                503 unavailable (Redis, Kafka or a provider cannot answer now;
                                   the caller may retry: Retry-After)

Services subclass these (dispatch's domain.Refused, alert's IntakeRefused, notify's errors);
the standard base each one had before (LookupError, PermissionError, ValueError) stays a base, so
existing `except` clauses keep working.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Conflict", "Forbidden", "HomewardError", "InvalidInput", "NotFound", "Refused",
           "Unavailable"]


class HomewardError(Exception):
    """`status` (HTTP), `code` (stable, translated by shared.i18n), `message` (fallback text),
    `field` (the request field at fault, dotted), `headers` (added to the answer), `context`
    (values for the translated message). Class attributes give each kind's defaults."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, status: int | None = None, code: str | None = None, message: str = "",
                 field: str | None = None, headers: dict[str, str] | None = None,
                 **context: Any) -> None:
        self.status = status if status is not None else type(self).status
        self.code = code if code is not None else type(self).code
        super().__init__(message or self.code)
        self.message = message
        self.field = field
        self.headers = headers
        self.context = context


class Refused(HomewardError):
    status, code = 400, "refused"


class NotFound(Refused, LookupError):
    status, code = 404, "not_found"


class Forbidden(Refused, PermissionError):
    status, code = 403, "forbidden"


class Conflict(Refused, ValueError):
    status, code = 409, "conflict"


class InvalidInput(Refused, ValueError):
    status, code = 422, "invalid"


class Unavailable(HomewardError):
    status, code = 503, "unavailable"
