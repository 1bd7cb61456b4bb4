"""Image + caption loading: pairing, orientation, transparency, crops, flips, normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.dataset import DatasetError, Example, ImageCaptionDataset, find_examples, load_rgb

RED, BLUE = (255, 0, 0), (0, 0, 255)


def halves(size: tuple[int, int]) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", size, BLUE)
    image.paste(Image.new("RGB", (size[0] // 2, size[1]), RED), (0, 0))
    return image


def test_find_examples_pairs_and_sorts(tmp_path: Path) -> None:
    for name in ("b.webp", "a.PNG", "c.jpeg"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
        (tmp_path / name).with_suffix(".txt").write_text(f"  caption {name}\n")
    (tmp_path / "readme.md").write_text("not an image")
    (tmp_path / "sub.png").mkdir()  # a folder with an image suffix is not an image
    examples = find_examples(tmp_path)
    assert [e.image_path.name for e in examples] == ["a.PNG", "b.webp", "c.jpeg"]
    assert examples[0].caption == "caption a.PNG"


def test_tensors_are_square_normalised_and_centre_cropped(tmp_path: Path) -> None:
    halves((256, 128)).save(tmp_path / "wide.png")  # -> 128x64, centre crop keeps x 32..96
    dataset = ImageCaptionDataset([Example(tmp_path / "wide.png", "wide")], 64, seed=0)
    item = dataset[0]
    pixels = item["pixel_values"]
    assert item["caption"] == "wide"
    assert pixels.shape == (3, 64, 64) and pixels.dtype == torch.float32
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0
    left, right = pixels[:, :, :28].mean(dim=(1, 2)), pixels[:, :, 36:].mean(dim=(1, 2))
    torch.testing.assert_close(left, torch.tensor([1.0, -1.0, -1.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(right, torch.tensor([-1.0, -1.0, 1.0]), atol=0.02, rtol=0)
    # the centre crop is half red, half blue
    assert (pixels[0] > 0).float().mean().item() == pytest.approx(0.5, abs=0.05)


def test_random_crop_and_flip_are_seeded(tmp_path: Path) -> None:
    halves((320, 64)).save(tmp_path / "wide.png")
    examples = [Example(tmp_path / "wide.png", "x")]

    def reads(seed: int) -> list[torch.Tensor]:
        dataset = ImageCaptionDataset(examples, 64, seed=seed, center_crop=False, random_flip=True)
        return [dataset[0]["pixel_values"] for _ in range(6)]

    first, again, other = reads(0), reads(0), reads(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    assert len({a.numpy().tobytes() for a in first}) > 1  # successive reads differ (augmentation)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = halves((80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    upright = load_rgb(tmp_path / "rotated.jpg")
    assert upright.size == (40, 80)
    array = np.asarray(upright)
    assert array[5, 20, 0] > 200 and array[-5, 20, 2] > 200  # left (red) turned to the top


def test_transparency_becomes_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (16, 16), (255, 0, 0, 0))  # fully transparent red
    image.paste((0, 0, 255, 255), (0, 0, 8, 16))
    image.save(tmp_path / "cutout.png")
    array = np.asarray(load_rgb(tmp_path / "cutout.png"))
    assert tuple(array[8, 2]) == (0, 0, 255)
    assert tuple(array[8, 12]) == (255, 255, 255)


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError) as info:
        load_rgb(tmp_path / "broken.png")
    assert "broken.png" in info.value.problems["data_dir"]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        find_examples(tmp_path / "nope")


def test_ambiguous_or_undecodable_captions_are_refused(tmp_path: Path) -> None:
    for name in ("a.png", "a.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "a.txt").write_text("shared")
    with pytest.raises(DatasetError, match="a.jpg and a.png would share one caption"):
        find_examples(tmp_path)
    (tmp_path / "a.jpg").unlink()
    (tmp_path / "a.txt").write_bytes(b"caf\xe9")  # latin-1, not UTF-8
    with pytest.raises(DatasetError, match="a.txt is not UTF-8"):
        find_examples(tmp_path)
