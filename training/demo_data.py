"""The demo model's training set: simple objects in named colours on named backgrounds, with captions.

Part of the built-in demo model (issue #7): a tiny SD-1.x-architecture pipeline trained from scratch on
CPU must follow prompts naming a colour and an object, so the offline studio shows real behaviour. This
module makes its data, procedurally and deterministically (numpy ``Generator`` from a seed): each sample
is an object (circle, square, triangle, bottle, star, ring) in one of the named colours, at a varied
position and size, on a flat background of another named colour, captioned the way prompts are written
("a red bottle on a blue background"). :func:`classify_colour` is the offline colour classifier the demo
model's prompt-following check uses: the named colour nearest to the dominant non-background colour.

No torch here: images are PIL, arrays numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

#: name -> sRGB; far apart from each other so a small model and a simple classifier can tell them apart
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 170, 60), "blue": (30, 70, 220), "yellow": (240, 210, 30),
    "purple": (140, 50, 180), "orange": (245, 130, 20), "white": (245, 245, 245), "black": (20, 20, 20),
}  # fmt: skip
#: backgrounds are drawn from the same table (never the object's own colour)
#: A prompt that names no background means the default backdrop, as in product photography: white
#: (black for a white object). Without one default the model would have to guess among seven
#: backgrounds and a small model blends them into a muddy colour.
DEFAULT_BACKDROP = "white"
#: share of the samples shot on the default backdrop (the others: any other colour, uniformly)
BACKDROP_SHARE = 0.3
OBJECTS = ("circle", "square", "triangle", "bottle", "star", "ring")


@dataclass(frozen=True)
class DemoSample:
    image: Image.Image
    caption: str
    colour: str
    obj: str
    background: str
    box: tuple[int, int, int, int]  #: the object's bounding box (left, top, right, bottom)


def caption_for(colour: str, obj: str, background: str) -> str:
    return f"a {colour} {obj} on a {background} background"


def backdrop_for(colour: str) -> str:
    """The background a prompt naming none means for an object of ``colour``."""
    return "black" if colour == DEFAULT_BACKDROP else DEFAULT_BACKDROP


def make_sample(rng: np.random.Generator, size: int = 64) -> DemoSample:
    """One random sample: object, colour, background colour, position and size all drawn from ``rng``."""
    names = list(COLOURS)
    colour = names[int(rng.integers(len(names)))]
    background = names[int(rng.integers(len(names) - 1))]
    if background == colour:  # every background but the object's own colour, uniformly
        background = names[-1]
    if rng.random() < BACKDROP_SHARE:
        background = backdrop_for(colour)
    obj = OBJECTS[int(rng.integers(len(OBJECTS)))]
    side = int(rng.integers(size * 3 // 8, size * 3 // 4 + 1))
    left = int(rng.integers(0, size - side + 1))
    top = int(rng.integers(0, size - side + 1))
    return draw(colour, obj, background, (left, top, left + side, top + side), size)


def draw(
    colour: str, obj: str, background: str, box: tuple[int, int, int, int], size: int = 64
) -> DemoSample:
    """The sample with exactly these labels and this box (deterministic)."""
    if colour not in COLOURS or background not in COLOURS:
        raise ValueError(f"colours must be among {', '.join(COLOURS)}; got {colour!r} on {background!r}")
    if obj not in OBJECTS:
        raise ValueError(f"objects are {', '.join(OBJECTS)}; got {obj!r}")
    image = Image.new("RGB", (size, size), COLOURS[background])
    paint(ImageDraw.Draw(image), obj, box, COLOURS[colour], COLOURS[background])
    return DemoSample(image, caption_for(colour, obj, background), colour, obj, background, box)


def paint(pen: ImageDraw.ImageDraw, obj: str, box: tuple[int, int, int, int], fill: tuple[int, int, int],
          background: tuple[int, int, int]) -> None:  # fmt: skip
    """Draw one object of shape ``obj`` filling ``box`` (a ring's hole shows ``background``)."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    if obj == "circle":
        pen.ellipse(box, fill=fill)
    elif obj == "square":
        pen.rectangle((left, top, right - 1, bottom - 1), fill=fill)
    elif obj == "triangle":
        pen.polygon([(left + width / 2, top), (right - 1, bottom - 1), (left, bottom - 1)], fill=fill)
    elif obj == "bottle":  # neck, shoulders, body: a product silhouette
        pen.rectangle((left + width * 0.4, top, left + width * 0.6, top + height * 0.3), fill=fill)
        pen.ellipse(
            (left + width * 0.2, top + height * 0.2, left + width * 0.8, top + height * 0.45), fill=fill
        )
        pen.rounded_rectangle((left + width * 0.2, top + height * 0.3, left + width * 0.8, bottom - 1),
                              radius=max(1, int(width * 0.1)), fill=fill)  # fmt: skip
    elif obj == "star":
        cx, cy, outer = left + width / 2, top + height / 2, width / 2
        points = [(cx + (outer if i % 2 == 0 else outer * 0.45) * np.sin(i * np.pi / 5),
                   cy - (outer if i % 2 == 0 else outer * 0.45) * np.cos(i * np.pi / 5)) for i in range(10)]  # fmt: skip
        pen.polygon(points, fill=fill)
    else:  # ring
        pen.ellipse(box, fill=fill)
        inset = max(2, width // 4)
        pen.ellipse((left + inset, top + inset, right - inset, bottom - inset), fill=background)


def make_free_image(rng: np.random.Generator, size: int = 64) -> Image.Image:
    """An uncaptioned image in *any* colours, for the autoencoder only: a background of a random RGB
    colour, one or two objects of random colours, some of them two-tone (top and bottom in different
    colours, like a product with a label). The demo model's VAE learns from these as well as from the
    named-colour samples, so it reproduces colours it was never prompted with (a brand's teal and pink)
    instead of snapping them to the nearest named colour, and a LoRA can then move the model to them."""

    def colour() -> tuple[int, int, int]:
        return tuple(int(v) for v in rng.integers(0, 256, 3))  # type: ignore[return-value]

    background = colour()
    image = Image.new("RGB", (size, size), background)
    for _ in range(int(rng.integers(1, 3))):
        obj = OBJECTS[int(rng.integers(len(OBJECTS)))]
        side = int(rng.integers(size // 4, size * 3 // 4 + 1))
        left, top = (int(v) for v in rng.integers(0, size - side + 1, 2))
        box = (left, top, left + side, top + side)
        shape = Image.new("L", (size, size), 0)  # the object's mask (a ring's hole stays out)
        paint(ImageDraw.Draw(shape), obj, box, 255, 0)  # type: ignore[arg-type]
        image.paste(colour(), (0, 0, size, size), shape)
        if rng.random() < 0.4:  # two-tone: the part below the cut in a second colour
            cut = top + int(side * rng.uniform(0.3, 0.7))
            ImageDraw.Draw(shape).rectangle((0, 0, size, cut - 1), fill=0)
            image.paste(colour(), (0, 0, size, size), shape)
    return image


def make_dataset(count: int, seed: int = 0, size: int = 64) -> list[DemoSample]:
    """``count`` samples from one seeded generator: the same arguments always give the same set."""
    rng = np.random.default_rng(seed)
    return [make_sample(rng, size) for _ in range(count)]


def colour_votes(pixels: np.ndarray) -> np.ndarray:
    """Per pixel, the index (in ``COLOURS``) of the nearest named colour (Euclidean in sRGB)."""
    table = np.array(list(COLOURS.values()), dtype=np.float64)
    rgb = np.asarray(pixels, dtype=np.float64)
    return np.argmin(((rgb[..., None, :] - table) ** 2).sum(axis=-1), axis=-1)


def nearest_colour(rgb: np.ndarray) -> str:
    """The named colour nearest to ``rgb`` (Euclidean in sRGB; the table's colours are far apart)."""
    return list(COLOURS)[int(colour_votes(rgb))]


def classify_colour(image: Image.Image, background: str | None = None) -> str:
    """The object's colour: each pixel votes for its nearest named colour; the background (the colour
    of the border pixels, unless given) is left out and the most voted other colour wins."""
    names = list(COLOURS)
    votes = colour_votes(np.asarray(image.convert("RGB")))
    if background is None:
        border = np.concatenate([votes[0], votes[-1], votes[:, 0], votes[:, -1]])
        background_index = int(np.bincount(border, minlength=len(names)).argmax())
    else:
        background_index = names.index(background)
    counts = np.bincount(votes.ravel(), minlength=len(names))
    counts[background_index] = -1
    return names[int(counts.argmax())]
