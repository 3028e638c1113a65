"""The photos an operator uploads during the call: files under the data dir, served by the
alert service (who may see one: services.alert.retention)."""

from __future__ import annotations

import uuid
from pathlib import Path

__all__ = ["PHOTO_TYPES", "PhotoStore"]


PHOTO_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


class PhotoStore:
    """Photos an operator uploads during the call, kept under the data dir and served by the
    alert service (hubs fetch them from the bulletin's photo URL)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, content_type: str, data: bytes) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}{PHOTO_TYPES[content_type]}"
        (self.directory / name).write_bytes(data)
        return name

    def path(self, name: str) -> Path | None:
        if "/" in name or name.startswith(".") or Path(name).suffix not in PHOTO_TYPES.values():
            return None
        path = self.directory / name
        return path if path.is_file() else None
