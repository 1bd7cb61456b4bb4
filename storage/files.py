"""Durability primitives shared by the blob store and database backups: fsync a file or a folder."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Persist a folder's entries (a rename or new file in it). Skipped where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):  # Windows cannot open folders; NTFS journals renames
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
