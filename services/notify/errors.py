"""Notify's use-case errors: the project's kinds (shared/errors.py), which shared.web maps to
HTTP; notify's api names a more specific code where it has one."""

from __future__ import annotations

from shared.errors import Conflict, Forbidden, NotFound

__all__ = ["Conflict", "Forbidden", "NotFound"]
