"""Write a training set in the folder format the standalone trainer reads.

For each item: ``<stem>.png`` (the image) and ``<stem>.txt`` (its caption, UTF-8). Every file is
written to a temp file in the same folder, fsynced and moved into place with ``os.replace``, so no
file under a final name is ever partial. If a write fails, the files already written are removed
again, leaving the folder empty.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from brand_kits.errors import KitError

logger = logging.getLogger(__name__)

_STEM = re.compile(r"[a-z0-9_-]{1,80}")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class TrainingItem:
    stem: str
    png_bytes: bytes
    caption: str


def write_training_folder(items: Sequence[TrainingItem], folder: Path) -> Path:
    """Write ``<stem>.png`` + ``<stem>.txt`` per item into ``folder`` (which must be empty or absent)."""
    # 1. Check every item before touching the disk.
    check_items(items)
    # 2. Prepare the folder.
    _prepare_folder(folder)
    # 3. Write the pairs; on failure remove what was written.
    written: list[Path] = []
    try:
        for item in items:
            written.append(write_atomic(folder / f"{item.stem}.png", item.png_bytes))
            written.append(write_atomic(folder / f"{item.stem}.txt", item.caption.encode("utf-8")))
        fsync_dir(folder)
    except OSError as exc:
        _remove(written)
        raise KitError(
            f"could not write the training set to {folder}: {exc.strerror or exc}; "
            "free some disk space or check the folder's permissions and try again"
        ) from exc
    except BaseException:
        _remove(written)
        raise
    logger.info("wrote %d training pairs to %s", len(items), folder)
    return folder


def check_items(items: Sequence[TrainingItem]) -> None:
    if not items:
        raise KitError("the training set is empty; add at least one validated image")
    seen: set[str] = set()
    for item in items:
        if not isinstance(item.stem, str) or not _STEM.fullmatch(item.stem):
            raise KitError(
                f"training item name {item.stem!r} is not allowed; use 1 to 80 characters of "
                "lowercase a-z, digits, '_' or '-'"
            )
        if item.stem in seen:
            raise KitError(f"training item name {item.stem!r} is used twice; give each image its own name")
        seen.add(item.stem)
        if not isinstance(item.png_bytes, bytes) or not item.png_bytes.startswith(_PNG_SIGNATURE):
            raise KitError(
                f"training item {item.stem!r} is not PNG data; pass the png_bytes from validate_image"
            )
        if not isinstance(item.caption, str) or not _is_utf8(item.caption):
            raise KitError(
                f"training item {item.stem!r} needs its caption as text that can be saved as UTF-8; "
                "retype the caption"
            )


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _prepare_folder(folder: Path) -> None:
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise KitError(f"{folder} exists and is not a folder; choose a new, empty folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise KitError(f"{folder} is not empty; choose a new, empty folder for the training set")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KitError(f"could not create {folder}: {exc.strerror or exc}; check the path") from exc


def write_atomic(path: Path, data: bytes) -> Path:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
