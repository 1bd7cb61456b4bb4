"""iter_folder_images: image files directly in a folder; links never followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kit_images import encode, photo

from brand_kits import ImageTooLarge, IngestLimits, KitError, iter_folder_images, validate_image


def _write(path: Path, data: bytes) -> bytes:
    path.write_bytes(data)
    return data


@pytest.fixture
def png() -> bytes:
    return encode(photo(96, 96), "PNG")


def test_reads_only_image_files_directly_in_the_folder_sorted_by_name(tmp_path: Path, png: bytes) -> None:
    kit = tmp_path / "kit"
    kit.mkdir()
    expected = {
        "a.png": _write(kit / "a.png", png),
        "B.JPG": _write(kit / "B.JPG", encode(photo(96, 96), "JPEG")),
        "c.jpeg": _write(kit / "c.jpeg", encode(photo(96, 96), "JPEG")),
        "d.WebP": _write(kit / "d.WebP", encode(photo(96, 96), "WEBP")),
        "e.png": _write(kit / "e.png", b"not really a png"),  # content is validate_image's job
    }
    (kit / "notes.txt").write_text("style guide")
    (kit / "archive.tiff").write_bytes(encode(photo(96, 96), "TIFF"))
    (kit / "noext").write_bytes(png)
    (kit / "._a.png").write_bytes(b"macOS resource fork")
    (kit / "sub").mkdir()
    (kit / "sub" / "nested.png").write_bytes(png)
    (kit / "folder.png").mkdir()
    result = iter_folder_images(kit)
    assert [name for name, _ in result] == sorted(expected)
    assert dict(result) == expected


def test_symlinks_are_skipped_never_followed(tmp_path: Path, png: bytes) -> None:
    kit = tmp_path / "kit"
    kit.mkdir()
    outside = tmp_path / "secret.png"
    outside.write_bytes(png)
    (kit / "real.png").write_bytes(png)
    (kit / "escape.png").symlink_to(outside)
    (kit / "inside-link.png").symlink_to(kit / "real.png")
    (kit / "dangling.png").symlink_to(tmp_path / "missing.png")
    (kit / "dirlink.png").symlink_to(tmp_path, target_is_directory=True)
    assert [name for name, _ in iter_folder_images(kit)] == ["real.png"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_skipped(tmp_path: Path, png: bytes) -> None:
    os.mkfifo(tmp_path / "pipe.png")  # reading it would block forever
    (tmp_path / "ok.png").write_bytes(png)
    assert [name for name, _ in iter_folder_images(tmp_path)] == ["ok.png"]


def test_more_than_max_files_is_refused(tmp_path: Path, png: bytes) -> None:
    for index in range(4):
        (tmp_path / f"{index}.png").write_bytes(png)
    (tmp_path / "readme.txt").write_text("not counted")
    assert len(iter_folder_images(tmp_path, IngestLimits(max_files=4))) == 4
    with pytest.raises(KitError, match="the folder has 4 images, more than the 3 allowed"):
        iter_folder_images(tmp_path, IngestLimits(max_files=3))


def test_oversized_file_is_refused_naming_it(tmp_path: Path, png: bytes) -> None:
    (tmp_path / "huge.png").write_bytes(png)
    with pytest.raises(ImageTooLarge, match=r"^huge.png: image too large"):
        iter_folder_images(tmp_path, IngestLimits(max_bytes=len(png) - 1))


def test_missing_folder_is_a_kit_error(tmp_path: Path) -> None:
    with pytest.raises(KitError, match="could not list the folder"):
        iter_folder_images(tmp_path / "nope")


def test_a_file_instead_of_a_folder_is_a_kit_error(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"x")
    with pytest.raises(KitError, match="could not list the folder"):
        iter_folder_images(tmp_path / "x.png")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_a_kit_error(tmp_path: Path, png: bytes) -> None:
    locked = tmp_path / "locked.png"
    locked.write_bytes(png)
    locked.chmod(0)
    with pytest.raises(KitError, match="could not read locked.png"):
        iter_folder_images(tmp_path)


def test_folder_images_feed_validate_image(tmp_path: Path, png: bytes) -> None:
    (tmp_path / "Bottle Front.png").write_bytes(png)
    [(name, data)] = iter_folder_images(tmp_path)
    assert validate_image(data, name).label == "Bottle Front.png"
