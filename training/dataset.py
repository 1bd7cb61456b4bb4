"""Image + caption pairs from a folder, turned into square, normalised training tensors.

A folder holds ``name.png|jpg|jpeg|webp`` images, each with a ``name.txt`` caption beside it.
Importing this module does not import torch (``TrainConfig.validate`` uses ``find_examples``).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.config import TrainConfigError

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class DatasetError(TrainConfigError):
    """The data folder cannot be trained on (reported against the ``data_dir`` field)."""

    def __init__(self, message: str) -> None:
        super().__init__({"data_dir": message})
        self.message = message


@dataclass(frozen=True)
class Example:
    image_path: Path
    caption: str


def find_examples(data_dir: Path) -> list[Example]:
    """List the image/caption pairs in ``data_dir``, sorted by file name (a stable order).

    Raises ``DatasetError`` naming every image without a caption, or when there is no image.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"folder {data_dir} does not exist")
    images = sorted(
        (p for p in data_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.name,
    )
    if not images:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {data_dir}")
    missing = [p.name for p in images if not p.with_suffix(".txt").is_file()]
    if missing:
        raise DatasetError(
            f"no caption file for {', '.join(missing)} in {data_dir}: "
            "write a same-name .txt caption next to each image"
        )
    by_stem: dict[str, list[str]] = {}
    for path in images:
        by_stem.setdefault(path.stem, []).append(path.name)
    shared = [" and ".join(names) for names in by_stem.values() if len(names) > 1]
    if shared:
        raise DatasetError(f"{'; '.join(shared)} would share one caption file; rename all but one")
    return [Example(image_path=path, caption=_read_caption(path.with_suffix(".txt"))) for path in images]


def _read_caption(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"caption {path.name} is not UTF-8 text; save it as UTF-8") from exc


def load_rgb(path: Path) -> Image.Image:
    """Open an image upright (EXIF orientation applied) as RGB.

    Transparent pixels are composited onto white, so cut-out product shots train as a product on
    white rather than on whatever colour their hidden pixels happen to hold.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"cannot read image {path.name}: {exc}") from exc
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def square_crop(image: Image.Image, resolution: int, *, center: bool, rng: random.Random) -> Image.Image:
    """Resize the shortest side to ``resolution`` and crop a ``resolution`` square."""
    from PIL import Image

    width, height = image.size
    scale = resolution / min(width, height)
    new_size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    resized = image.resize(new_size, Image.Resampling.LANCZOS)
    spare_x, spare_y = new_size[0] - resolution, new_size[1] - resolution
    left = spare_x // 2 if center else rng.randint(0, spare_x)
    top = spare_y // 2 if center else rng.randint(0, spare_y)
    return resized.crop((left, top, left + resolution, top + resolution))


class ImageCaptionDataset:
    """Map-style dataset: ``{"pixel_values": float32 (3, R, R) in [-1, 1], "caption": str}``.

    Random crops and flips are drawn from a generator seeded by (seed, index, times this index was
    read), so a run is reproducible whatever order the sampler visits the examples in.
    """

    def __init__(
        self,
        examples: list[Example],
        resolution: int,
        *,
        seed: int,
        center_crop: bool = True,
        random_flip: bool = False,
    ) -> None:
        if not examples:
            raise DatasetError("no examples to train on")
        self.examples = list(examples)
        self.resolution = resolution
        self.seed = seed
        self.center_crop = center_crop
        self.random_flip = random_flip
        self._reads = [0] * len(self.examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import numpy as np
        import torch
        from PIL import ImageOps

        example = self.examples[index]
        rng = random.Random(f"{self.seed}:{index}:{self._reads[index]}")
        self._reads[index] += 1
        image = square_crop(load_rgb(example.image_path), self.resolution, center=self.center_crop, rng=rng)
        if self.random_flip and rng.random() < 0.5:
            image = ImageOps.mirror(image)
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        pixels = torch.from_numpy(array).permute(2, 0, 1).contiguous()
        return {"pixel_values": pixels, "caption": example.caption}
