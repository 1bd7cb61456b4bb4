"""write_training_folder: <stem>.png + <stem>.txt pairs, all or nothing, into an empty folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from kit_images import encode, photo
from PIL import Image

from brand_kits import KitError, TrainingItem, validate_image, write_training_folder


@pytest.fixture(scope="module")
def png() -> bytes:
    return validate_image(encode(photo(96, 96), "JPEG"), "p.jpg").png_bytes


def test_writes_image_and_caption_pairs(tmp_path: Path, png: bytes) -> None:
    items = [
        TrainingItem("img_000", png, "a photo of sks bottle"),
        TrainingItem("img-001", png, "une photo de sks bouteille, crème"),
    ]
    folder = tmp_path / "runs" / "r1" / "dataset"
    assert write_training_folder(items, folder) == folder
    assert sorted(p.name for p in folder.iterdir()) == [
        "img-001.png",
        "img-001.txt",
        "img_000.png",
        "img_000.txt",
    ]
    assert (folder / "img_000.png").read_bytes() == png
    assert (folder / "img-001.txt").read_bytes() == "une photo de sks bouteille, crème".encode()


def test_existing_empty_folder_is_used(tmp_path: Path, png: bytes) -> None:
    write_training_folder([TrainingItem("a", png, "sks")], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.txt"]


@pytest.mark.parametrize("stem", ["", "Img", "a.b", "../x", "a/b", "a b", "x" * 81, "é", "a\n"])
def test_bad_stems_are_refused_before_writing(tmp_path: Path, png: bytes, stem: str) -> None:
    items = [TrainingItem("good", png, "sks"), TrainingItem(stem, png, "sks")]
    with pytest.raises(KitError, match="not allowed"):
        write_training_folder(items, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_80_character_stem_is_allowed(tmp_path: Path, png: bytes) -> None:
    write_training_folder([TrainingItem("x" * 80, png, "sks")], tmp_path / "out")
    assert (tmp_path / "out" / ("x" * 80 + ".png")).exists()


def test_non_empty_folder_is_refused_and_left_alone(tmp_path: Path, png: bytes) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(KitError, match="is not empty"):
        write_training_folder([TrainingItem("a", png, "sks")], tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_a_file_in_place_of_the_folder_is_refused(tmp_path: Path, png: bytes) -> None:
    target = tmp_path / "dataset"
    target.write_text("x")
    with pytest.raises(KitError, match="is not a folder"):
        write_training_folder([TrainingItem("a", png, "sks")], target)


def test_symlinked_folder_is_refused(tmp_path: Path, png: bytes) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    with pytest.raises(KitError, match="is not a folder"):
        write_training_folder([TrainingItem("a", png, "sks")], tmp_path / "link")
    assert list((tmp_path / "real").iterdir()) == []


def test_duplicate_stems_non_png_bytes_and_empty_sets_are_refused(tmp_path: Path, png: bytes) -> None:
    with pytest.raises(KitError, match="used twice"):
        write_training_folder([TrainingItem("a", png, "x"), TrainingItem("a", png, "y")], tmp_path / "o1")
    with pytest.raises(KitError, match="not PNG data"):
        write_training_folder([TrainingItem("a", encode(photo(96, 96), "JPEG"), "x")], tmp_path / "o2")
    with pytest.raises(KitError, match="empty"):
        write_training_folder([], tmp_path / "o3")
    assert list(tmp_path.iterdir()) == []


def test_no_temp_files_remain(tmp_path: Path, png: bytes) -> None:
    items = [TrainingItem(f"img_{i:03d}", png, f"sks {i}") for i in range(5)]
    write_training_folder(items, tmp_path / "out")
    names = [p.name for p in (tmp_path / "out").iterdir()]
    assert len(names) == 10 and not any(name.startswith(".") or name.endswith(".tmp") for name in names)


def test_caption_that_is_not_utf8_text_is_refused(tmp_path: Path, png: bytes) -> None:
    with pytest.raises(KitError, match="UTF-8"):
        write_training_folder(
            [TrainingItem("a", png, "ok"), TrainingItem("b", png, "bad\udc80")], tmp_path / "o"
        )
    assert not (tmp_path / "o").exists()


_FILL_DISK = """
import resource, signal, sys
from pathlib import Path
from brand_kits import KitError, TrainingItem, write_training_folder

small, large, folder = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]).read_bytes(), Path(sys.argv[3])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (len(small) + 100, resource.RLIM_INFINITY))
items = [TrainingItem("a", small, "sks a"), TrainingItem("b", small, "sks b"), TrainingItem("c", large, "sks c")]
try:
    write_training_folder(items, folder)
except KitError as exc:
    print("KitError:", exc)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX resource limits")
def test_failed_write_leaves_no_files_behind(tmp_path: Path, png: bytes) -> None:
    noise = np.random.default_rng(7).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    large = validate_image(encode(Image.fromarray(noise), "PNG"), "noise.png").png_bytes
    assert len(large) > len(png) + 100
    (tmp_path / "small.png").write_bytes(png)
    (tmp_path / "large.png").write_bytes(large)
    folder = tmp_path / "dataset"
    repo_root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _FILL_DISK,
            str(tmp_path / "small.png"),
            str(tmp_path / "large.png"),
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo_root,
        check=True,
    )
    assert done.stdout.startswith("KitError: could not write the training set"), done.stdout + done.stderr
    assert list(folder.iterdir()) == []
