"""Training-set exports in the layouts other tools read.

* :func:`write_imagefolder`: Hugging Face ``datasets`` "imagefolder" layout, ``folder/train/<stem>.png``
  plus ``folder/train/metadata.jsonl`` (one ``{"file_name": ..., "text": ...}`` line per image), so
  ``load_dataset("imagefolder", data_dir=folder, split="train")`` gives ``image`` and ``text`` columns.
* :func:`write_kohya_folder`: kohya-ss sd-scripts DreamBooth layout,
  ``folder/img/<repeats>_<trigger> <class>/<stem>.png`` + ``<stem>.txt``.
* :func:`write_zip_atomic`: a deterministic zip (the kit archive's writer).

Both refuse a non-empty target, check every item before touching the disk, write each file to a temp
file + fsync + ``os.replace``, and remove what they wrote (and the folders they created) on failure.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from brand_kits.errors import InvalidKitField, KitError
from brand_kits.trainset import TrainingItem, check_items, fsync_dir, write_atomic, write_training_folder

logger = logging.getLogger(__name__)

METADATA_NAME = "metadata.jsonl"
MAX_REPEATS = 1000
_STEM = re.compile(r"[a-z0-9_-]{1,80}")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Path separators, NTFS-reserved characters and controls cannot appear in a kohya folder name.
_PATH_UNSAFE = frozenset('/\\:*?"<>|')
_PATH_WORD_MAX = 64
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_imagefolder(items: Sequence[TrainingItem], folder: Path) -> Path:
    """Write ``items`` as a Hugging Face imagefolder dataset under ``folder`` (empty or absent); return it."""
    # 1. Check every item before touching the disk.
    check_items(items)
    lines = [
        json.dumps({"file_name": f"{item.stem}.png", "text": item.caption}, ensure_ascii=False) + "\n"
        for item in items
    ]
    # 2. Prepare the folders; remember what we created so a failure can remove it again.
    created = _prepare_empty(folder)
    train = folder / "train"
    written: list[Path] = []
    try:
        train.mkdir()
        created.append(train)
        # 3. The images, then the metadata last: a metadata file means the set is complete.
        for item in items:
            written.append(write_atomic(train / f"{item.stem}.png", item.png_bytes))
        written.append(write_atomic(train / METADATA_NAME, "".join(lines).encode("utf-8")))
        fsync_dir(train)
    except OSError as exc:
        _clean_up(written, created)
        raise KitError(
            f"could not write the dataset to {folder}: {exc.strerror or exc}; "
            "free some disk space or check the folder's permissions and try again"
        ) from exc
    except BaseException:
        _clean_up(written, created)
        raise
    logger.info("wrote an imagefolder dataset of %d images to %s", len(items), folder)
    return folder


def write_kohya_folder(
    items: Sequence[TrainingItem],
    folder: Path,
    *,
    repeats: int,
    trigger_token: str,
    class_noun: str,
) -> Path:
    """Write ``items`` in kohya's layout under ``folder`` (empty or absent).

    Returns ``folder / "img"``: the parent of the ``<repeats>_<trigger> <class>`` image folder, which
    is what kohya's ``--train_data_dir`` expects (kohya reads the repeat count and the class prompt from
    the subfolder's name).
    """
    # 1. Check the arguments and every item before touching the disk.
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise InvalidKitField(
            "repeats", f"repeats must be a whole number from 1 to {MAX_REPEATS}, got {repeats!r}"
        )
    _check_path_word("trigger_token", trigger_token)
    _check_path_word("class_noun", class_noun)
    check_items(items)
    # 2. Prepare the folders, then let the training-folder writer do the (atomic) pairs.
    created = _prepare_empty(folder)
    images_root = folder / "img"
    try:
        images_root.mkdir()
        created.append(images_root)
        subfolder = images_root / f"{repeats}_{trigger_token} {class_noun}"
        write_training_folder(items, subfolder)
    except BaseException as exc:
        _clean_up([], [images_root / f"{repeats}_{trigger_token} {class_noun}", *created])
        if isinstance(exc, OSError):
            raise KitError(
                f"could not create {images_root}: {exc.strerror or exc}; check the folder's permissions"
            ) from exc
        raise
    logger.info("wrote a kohya training set of %d images (x%d) to %s", len(items), repeats, images_root)
    return images_root


def write_zip_atomic(target: Path, members: Iterable[tuple[str, bytes]]) -> Path:
    """Write ``members`` (name, bytes), in the given order, as a deterministic zip at ``target``.

    Deflate level 6, a fixed 1980-01-01 timestamp, unix regular-file mode 0644 and no extra fields: the
    same members give the same bytes. Written to a temp file in ``target``'s folder, fsynced and moved
    into place with ``os.replace``; if writing or ``members`` itself raises, the temp file is removed
    and ``target`` is left as it was (an ``OSError`` becomes a :class:`KitError`).
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise KitError(f"could not write {target}: {exc.strerror or exc}; check the folder") from exc
    try:
        with os.fdopen(fd, "w+b") as handle:
            with zipfile.ZipFile(handle, "w") as archive:
                for name, data in members:
                    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.create_system = 3  # unix, on every OS: the same bytes everywhere
                    info.external_attr = (stat.S_IFREG | 0o644) << 16
                    archive.writestr(info, data, compresslevel=6)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        fsync_dir(target.parent)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise KitError(
            f"could not write {target}: {exc.strerror or exc}; free some disk space or check the "
            "folder's permissions and try again"
        ) from exc
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _check_path_word(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidKitField(field, f"{field} must be text, got {type(value).__name__}")
    bad = [c for c in value if c in _PATH_UNSAFE or unicodedata.category(c) in ("Cc", "Cf", "Cs")]
    if bad or value != value.strip() or value in ("", ".", "..") or len(value) > _PATH_WORD_MAX:
        raise InvalidKitField(
            field,
            f"{field} {value!r:.80} cannot be part of a folder name; use 1 to {_PATH_WORD_MAX} letters, "
            "digits, spaces, '-' or '_' (no slashes, colons or control characters)",
        )
    return value






def _prepare_empty(folder: Path) -> list[Path]:
    """Make sure ``folder`` is an empty folder; return the folders created for it (outermost first)."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise KitError(f"{folder} exists and is not a folder; choose a new, empty folder")
    if folder.is_dir():
        if any(folder.iterdir()):
            raise KitError(f"{folder} is not empty; choose a new, empty folder for the export")
        return []
    missing = [folder, *(p for p in folder.parents if not p.exists())]
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        raise KitError(f"could not create {folder}: {exc.strerror or exc}; check the path") from exc
    return list(reversed(missing))




def _clean_up(files: list[Path], folders: list[Path]) -> None:
    """Remove ``files``, then each of ``folders`` that is (now) empty, innermost first."""
    for path in files:
        path.unlink(missing_ok=True)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            logger.debug("left %s in place (missing or not empty)", folder)

