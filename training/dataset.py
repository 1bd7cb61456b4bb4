"""Image + caption pairs from a folder, turned into normalised training tensors of a given size.

A folder holds ``name.png|jpg|jpeg|webp`` images, each with a ``name.txt`` caption beside it and,
optionally, a ``name.mask.png`` loss mask (an L-mode PNG, white = product; used with
``masked_loss``). Mask files are never training images themselves.

Each image is trained at a size chosen for it (its aspect-ratio bucket, or a square): it is resized
to cover that size and cropped to it (centred, or at a seeded random offset), then maybe mirrored.
The crop and flip of an image in an epoch are drawn from ``random.Random(f"{seed}:{index}:{epoch}")``
alone, so they do not depend on the order examples are visited in and a resumed run redraws them.
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
#: ``<stem>.mask.png`` beside ``<stem>.<ext>`` is that image's loss mask.
MASK_SUFFIX = ".mask.png"
#: EXIF orientations that turn the picture by 90 degrees (width and height swap when upright).
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


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
        (
            p
            for p in data_dir.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not is_mask_file(p)
        ),
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


def is_mask_file(path: Path) -> bool:
    return path.name.lower().endswith(MASK_SUFFIX)


def mask_path(image_path: Path) -> Path:
    """Where the loss mask of ``image_path`` would be: ``<stem>.mask.png`` beside it."""
    return image_path.with_name(f"{image_path.stem}{MASK_SUFFIX}")


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


def upright_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of the image as displayed (EXIF rotation applied), read from its header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            width, height = opened.size
            orientation = opened.getexif().get(0x0112)
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"cannot read image {path.name}: {exc}") from exc
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)


def cover_size(image_size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """The size ``image_size`` is resized to so that it covers ``target`` keeping its aspect ratio."""
    width, height = image_size
    scale = max(target[0] / width, target[1] / height)
    return max(target[0], round(width * scale)), max(target[1], round(height * scale))


def square_crop(image: Image.Image, resolution: int, *, center: bool, rng: random.Random) -> Image.Image:
    """Resize the shortest side to ``resolution`` and crop a ``resolution`` square."""
    from PIL import Image

    new_size = cover_size(image.size, (resolution, resolution))
    resized = image.resize(new_size, Image.Resampling.LANCZOS)
    spare_x, spare_y = new_size[0] - resolution, new_size[1] - resolution
    left = spare_x // 2 if center else rng.randint(0, spare_x)
    top = spare_y // 2 if center else rng.randint(0, spare_y)
    return resized.crop((left, top, left + resolution, top + resolution))


@dataclass(frozen=True)
class Variant:
    """One concrete training picture of an example: its size, crop offset and flip."""

    index: int
    width: int
    height: int
    left: int
    top: int
    flip: bool


class TrainingImages:
    """The examples with their training sizes; turns a ``Variant`` into pixel and mask tensors."""

    def __init__(
        self,
        examples: list[Example],
        sizes: list[tuple[int, int]],
        *,
        seed: int,
        center_crop: bool = True,
        random_flip: bool = False,
        masked_loss: bool = False,
    ) -> None:
        if not examples:
            raise DatasetError("no examples to train on")
        if len(sizes) != len(examples):
            raise ValueError("one training size per example is needed")
        self.examples = list(examples)
        self.sizes = list(sizes)
        self.seed = seed
        self.center_crop = center_crop
        self.random_flip = random_flip
        self.masks = [
            mask_path(e.image_path) if masked_loss and mask_path(e.image_path).is_file() else None
            for e in self.examples
        ]
        self._image_sizes: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def deterministic(self) -> bool:
        """True when every epoch crops each image the same way (so its latents can be cached)."""
        return self.center_crop

    def image_size(self, index: int) -> tuple[int, int]:
        if index not in self._image_sizes:
            self._image_sizes[index] = upright_size(self.examples[index].image_path)
        return self._image_sizes[index]

    def variant(self, index: int, epoch: int) -> Variant:
        """The crop and flip of example ``index`` in ``epoch`` (seeded by seed, index and epoch)."""
        width, height = self.sizes[index]
        covered = cover_size(self.image_size(index), (width, height))
        spare_x, spare_y = covered[0] - width, covered[1] - height
        rng = random.Random(f"{self.seed}:{index}:{epoch}")
        left = spare_x // 2 if self.center_crop else rng.randint(0, spare_x)
        top = spare_y // 2 if self.center_crop else rng.randint(0, spare_y)
        flip = self.random_flip and rng.random() < 0.5
        return Variant(index, width, height, left, top, flip)

    def fixed_variants(self, index: int) -> list[Variant]:
        """Every variant example ``index`` can take (centre crop: unflipped, and flipped if enabled)."""
        if not self.deterministic:
            raise ValueError("random crops have no fixed set of variants")
        plain = self.variant(index, 0)
        plain = Variant(plain.index, plain.width, plain.height, plain.left, plain.top, False)
        if not self.random_flip:
            return [plain]
        return [plain, Variant(plain.index, plain.width, plain.height, plain.left, plain.top, True)]

    def add_time_ids(self, variant: Variant) -> tuple[int, int, int, int, int, int]:
        """SDXL's size conditioning of ``variant``: ``(original_h, original_w, crop_top, crop_left,
        target_h, target_w)``.

        original = the upright image's size; crop = where the training picture's top-left corner lies
        in the resized (covering) image as the model sees it, i.e. in the mirrored image when the
        variant is flipped (as diffusers' SDXL script and sd-scripts compute it); target = the bucket.
        """
        width, height = self.image_size(variant.index)
        covered_width = cover_size((width, height), (variant.width, variant.height))[0]
        left = covered_width - variant.left - variant.width if variant.flip else variant.left
        return height, width, variant.top, left, variant.height, variant.width

    def pixels(self, variant: Variant) -> Any:
        """float32 ``(3, height, width)`` in [-1, 1]."""
        import numpy as np
        import torch

        image = self._place(load_rgb(self.examples[variant.index].image_path), variant, lanczos=True)
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    def mask(self, variant: Variant) -> Any:
        """float32 ``(1, height, width)`` in [0, 1] (1 = product), or None when the image has no mask."""
        import numpy as np
        import torch

        path = self.masks[variant.index]
        if path is None:
            return None
        image = self._place(load_mask(path, self.image_size(variant.index)), variant, lanczos=False)
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None].contiguous()

    @staticmethod
    def _place(image: Image.Image, variant: Variant, *, lanczos: bool) -> Image.Image:
        from PIL import Image, ImageOps

        covered = cover_size(image.size, (variant.width, variant.height))
        method = Image.Resampling.LANCZOS if lanczos else Image.Resampling.BILINEAR
        box = (variant.left, variant.top, variant.left + variant.width, variant.top + variant.height)
        placed = image.resize(covered, method).crop(box)
        return ImageOps.mirror(placed) if variant.flip else placed


def load_mask(path: Path, image_size: tuple[int, int]) -> Image.Image:
    """Read a loss mask: a single-channel PNG the size of its (upright) image, not entirely black."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            opened.load()
            mask = opened.copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"cannot read mask {path.name}: {exc}") from exc
    if mask.mode not in ("L", "1"):
        raise DatasetError(
            f"mask {path.name} is a {mask.mode} image; save it as a greyscale (L mode) PNG, white = product"
        )
    if mask.size != image_size:
        raise DatasetError(
            f"mask {path.name} is {mask.size[0]}x{mask.size[1]} but its image is "
            f"{image_size[0]}x{image_size[1]}; make the mask the same size as the upright image"
        )
    mask = mask.convert("L")
    if mask.getextrema()[1] == 0:
        raise DatasetError(f"mask {path.name} is entirely black (no product pixels); fix or delete it")
    return mask


class ImageCaptionDataset:
    """Map-style dataset: ``{"pixel_values": float32 (3, R, R) in [-1, 1], "caption": str}``.

    Random crops and flips are drawn from a generator seeded by (seed, index, times this index was
    read), so a run is reproducible whatever order the sampler visits the examples in. (The
    trainer uses ``TrainingImages`` directly, with the epoch in place of the read count.)
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
        self.images = TrainingImages(
            self.examples,
            [(resolution, resolution)] * len(self.examples),
            seed=seed,
            center_crop=center_crop,
            random_flip=random_flip,
        )
        self._reads = [0] * len(self.examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        variant = self.images.variant(index, self._reads[index])
        self._reads[index] += 1
        return {"pixel_values": self.images.pixels(variant), "caption": self.examples[index].caption}
