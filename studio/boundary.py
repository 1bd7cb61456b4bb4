"""The facade's boundary: lower layers' errors become the studio's own, and the app's version."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

import brand_kits
import storage
from studio import errors


def app_version() -> str:
    try:
        return version("brand-studio")
    except PackageNotFoundError:
        return "0.0.0+local"


@contextmanager
def translate_errors() -> Iterator[None]:
    """Map lower layers' errors to the studio's error family (only at the facade boundary)."""
    try:
        yield
    except brand_kits.InvalidKitField as exc:
        raise errors.InvalidInput(str(exc), field=exc.field) from exc
    except brand_kits.KitError as exc:
        raise errors.InvalidInput(str(exc)) from exc
    except storage.StorageFull as exc:
        raise errors.StorageFull(str(exc)) from exc
    except storage.IntegrityViolation as exc:
        raise errors.Conflict(str(exc)) from exc
    except storage.RowNotFound as exc:
        raise errors.NotFound(str(exc)) from exc
    except (storage.SchemaTooNew, storage.DatabaseCorrupt, storage.ReadOnlyStorage) as exc:
        raise errors.StorageUnavailable(str(exc)) from exc
    except storage.BlobNotFound as exc:
        raise errors.NotFound(f"a stored file is missing: {exc}") from exc
