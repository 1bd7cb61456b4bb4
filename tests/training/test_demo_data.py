"""The demo model's procedural training set and its offline colour classifier (issue #7 groundwork)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from training.demo_data import COLOURS, OBJECTS, caption_for, classify_colour, draw, make_dataset


def test_the_same_seed_gives_the_same_set_and_captions_match_the_labels() -> None:
    first, again, other = make_dataset(40, seed=3), make_dataset(40, seed=3), make_dataset(40, seed=4)
    assert [np.asarray(s.image).tobytes() for s in first] == [np.asarray(s.image).tobytes() for s in again]
    assert [s.caption for s in first] != [s.caption for s in other]
    for sample in first:
        assert sample.caption == caption_for(sample.colour, sample.obj, sample.background)
        assert sample.colour != sample.background and sample.image.size == (64, 64)
        pixels = np.asarray(sample.image)
        assert (pixels == COLOURS[sample.colour]).all(axis=-1).sum() > 40  # the object is really drawn


def test_the_set_covers_every_colour_object_and_background() -> None:
    samples = make_dataset(600, seed=0)
    assert set(Counter(s.colour for s in samples)) == set(COLOURS)
    assert set(Counter(s.obj for s in samples)) == set(OBJECTS)
    assert set(Counter(s.background for s in samples)) == set(COLOURS)


def test_the_classifier_reads_the_object_colour_back() -> None:
    samples = make_dataset(300, seed=1)
    right = sum(classify_colour(s.image) == s.colour for s in samples)
    assert right == len(samples)
    noisy = sum(classify_colour(_noisy(s.image, i), s.background) == s.colour for i, s in enumerate(samples[:100]))
    assert noisy >= 95  # model output is never flat: the classifier tolerates noise


def test_bad_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="colours must be among"):
        draw("teal", "circle", "red", (0, 0, 10, 10))
    with pytest.raises(ValueError, match="objects are"):
        draw("red", "cube", "blue", (0, 0, 10, 10))


def _noisy(image, seed: int):  # type: ignore[no-untyped-def]
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0, 25, size=(64, 64, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
