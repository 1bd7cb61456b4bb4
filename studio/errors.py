"""The studio's error family. Only pages and the CLI catch ``StudioError``.

Every message says what was wrong and how to fix it.
"""

from __future__ import annotations


class StudioError(Exception):
    """Base of every error a user can be shown."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidInput(StudioError):
    """The request itself is wrong (a field value, an upload, a file)."""


class NotFound(StudioError):
    """The thing asked for does not exist."""


class Conflict(StudioError):
    """The request clashes with what is stored (a duplicate name, a job already running)."""


class ModelError(StudioError):
    """A model could not be resolved, refused for safety, or failed to load."""


class StorageFull(StudioError):
    """The disk is full; nothing was written. Free space and retry."""


class StorageUnavailable(StudioError):
    """The data store cannot be used (read-only, corrupt, or newer than this app)."""


class GenerationError(StudioError):
    """Generation failed for a reason other than bad input."""


class TrainingError(StudioError):
    """Training failed for a reason other than bad input."""


class GenerationCancelled(StudioError):
    """The user stopped a generation; nothing was stored. A progress callback raises it to stop."""
