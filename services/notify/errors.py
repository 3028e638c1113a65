"""Notify's use-case errors, mapped to HTTP by its api."""

from __future__ import annotations


class NotFound(LookupError):
    pass


class Forbidden(PermissionError):
    pass


class Conflict(ValueError):
    pass
