"""Training-set exports: Hugging Face imagefolder (loaded with the real `datasets`) and kohya layouts."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from kit_images import encode, photo

from brand_kits.errors import InvalidKitField, KitError
from brand_kits.exports import write_imagefolder, write_kohya_folder
from brand_kits.trainset import TrainingItem

SIZES = [(64, 64), (80, 64), (96, 72)]
CAPTIONS = ["a photo of acm3 bottle", 'acm3 bottle, "quoted", crème', "acm3 bottle\non two lines"]


@pytest.fixture(scope="module")
def items() -> list[TrainingItem]:
    return [
        TrainingItem(f"img_{i:03d}", encode(photo(w, h), "PNG"), caption)
        for i, ((w, h), caption) in enumerate(zip(SIZES, CAPTIONS, strict=True))
    ]


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _fail_fsync_after(monkeypatch: pytest.MonkeyPatch, successes: int) -> None:
    real_fsync: Callable[[int], None] = os.fsync
    calls = {"n": 0}

    def flaky(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] > successes:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", flaky)


# ------------------------------------------------------------------------------------------ imagefolder


def test_imagefolder_layout_and_metadata(tmp_path: Path, items: list[TrainingItem]) -> None:
    folder = tmp_path / "export" / "ds"
    assert write_imagefolder(items, folder) == folder
    assert _listing(folder) == [
        "train",
        "train/img_000.png",
        "train/img_001.png",
        "train/img_002.png",
        "train/metadata.jsonl",
    ]
    lines = (folder / "train" / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"file_name": f"{item.stem}.png", "text": item.caption} for item in items
    ]
    assert (folder / "train" / "img_001.png").read_bytes() == items[1].png_bytes


def test_imagefolder_loads_with_datasets(
    tmp_path: Path, items: list[TrainingItem], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    folder = write_imagefolder(items, tmp_path / "ds")
    dataset = datasets.load_dataset(
        "imagefolder", data_dir=str(folder), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert dataset.num_rows == len(items)
    assert set(dataset.column_names) == {"image", "text"}
    by_size = {row["image"].size: row["text"] for row in dataset}
    assert by_size == dict(zip(SIZES, CAPTIONS, strict=True))


def test_imagefolder_refuses_a_non_empty_folder(tmp_path: Path, items: list[TrainingItem]) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(KitError, match="not empty"):
        write_imagefolder(items, tmp_path)
    assert _listing(tmp_path) == ["keep.txt"]
    with pytest.raises(KitError, match="not a folder"):
        write_imagefolder(items, tmp_path / "keep.txt")


@pytest.mark.parametrize(
    "bad", [TrainingItem("../x", b"\x89PNG\r\n\x1a\n", "c"), TrainingItem("a", b"GIF89a", "c")]
)
def test_imagefolder_checks_items_before_touching_the_disk(
    tmp_path: Path, items: list[TrainingItem], bad: TrainingItem
) -> None:
    with pytest.raises(KitError):
        write_imagefolder([*items, bad], tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    with pytest.raises(KitError, match="used twice"):
        write_imagefolder([items[0], items[0]], tmp_path / "ds")
    with pytest.raises(KitError, match="empty"):
        write_imagefolder([], tmp_path / "ds")
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("successes", [0, 2, 3])  # fail on an image, on the last image, on the metadata
def test_imagefolder_failure_leaves_nothing(
    tmp_path: Path, items: list[TrainingItem], monkeypatch: pytest.MonkeyPatch, successes: int
) -> None:
    _fail_fsync_after(monkeypatch, successes)
    with pytest.raises(KitError, match="No space left"):
        write_imagefolder(items, tmp_path / "a" / "ds")
    assert _listing(tmp_path) == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(KitError):
        write_imagefolder(items, tmp_path / "empty")
    assert _listing(tmp_path) == ["empty"]  # a folder the caller made is kept, and left empty


# ------------------------------------------------------------------------------------------------ kohya


def test_kohya_layout(tmp_path: Path, items: list[TrainingItem]) -> None:
    root = write_kohya_folder(
        items, tmp_path / "k", repeats=10, trigger_token="acm_3", class_noun="water bottle"
    )
    assert root == tmp_path / "k" / "img"
    [subfolder] = root.iterdir()
    assert subfolder.name == "10_acm_3 water bottle"
    # kohya's DreamBooth reader: the repeats before the first "_", the class prompt after it.
    tokens = subfolder.name.split("_")
    assert int(tokens[0]) == 10 and "_".join(tokens[1:]) == "acm_3 water bottle"
    assert sorted(p.name for p in subfolder.iterdir()) == [
        f"{item.stem}{ext}" for item in items for ext in (".png", ".txt")
    ]
    for item in items:
        assert (subfolder / f"{item.stem}.txt").read_bytes() == item.caption.encode("utf-8")
        assert (subfolder / f"{item.stem}.png").read_bytes() == item.png_bytes


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"repeats": 0}, "repeats"),
        ({"repeats": 1001}, "repeats"),
        ({"repeats": True}, "repeats"),
        ({"repeats": "3"}, "repeats"),
        ({"trigger_token": "a/b"}, "trigger_token"),
        ({"trigger_token": ".."}, "trigger_token"),
        ({"trigger_token": "..\\x"}, "trigger_token"),
        ({"trigger_token": ""}, "trigger_token"),
        ({"class_noun": "C:bottle"}, "class_noun"),
        ({"class_noun": "bottle\n"}, "class_noun"),
        ({"class_noun": " bottle"}, "class_noun"),
    ],
)
def test_kohya_refuses_bad_arguments(
    tmp_path: Path, items: list[TrainingItem], kwargs: dict[str, object], field: str
) -> None:
    arguments: dict[str, object] = {"repeats": 5, "trigger_token": "acm3", "class_noun": "bottle", **kwargs}
    with pytest.raises(InvalidKitField) as caught:
        write_kohya_folder(items, tmp_path / "k", **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert not (tmp_path / "k").exists()


def test_kohya_failure_leaves_nothing(
    tmp_path: Path, items: list[TrainingItem], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_fsync_after(monkeypatch, 3)
    with pytest.raises(KitError):
        write_kohya_folder(items, tmp_path / "k", repeats=1, trigger_token="acm3", class_noun="bottle")
    assert _listing(tmp_path) == []


def test_kohya_refuses_a_non_empty_folder(tmp_path: Path, items: list[TrainingItem]) -> None:
    (tmp_path / "img").mkdir()
    with pytest.raises(KitError, match="not empty"):
        write_kohya_folder(items, tmp_path, repeats=1, trigger_token="acm3", class_noun="bottle")
    assert _listing(tmp_path) == ["img"]
