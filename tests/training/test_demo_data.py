"""The demo model's procedural training set and its offline colour classifier (issue #7 groundwork)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from training.demo_data import (
    COLOURS,
    OBJECTS,
    backdrop_for,
    caption_for,
    classify_colour,
    draw,
    make_dataset,
    make_free_image,
)


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


def test_about_four_in_ten_samples_are_on_the_default_backdrop() -> None:
    samples = make_dataset(2000, seed=2)
    on_backdrop = [s for s in samples if s.background == backdrop_for(s.colour)]
    assert 0.33 < len(on_backdrop) / len(samples) < 0.47  # 30 % by rule + the uniform draw's share
    assert {s.background for s in samples if s.colour == "white"} >= {"black", "red"}
    assert backdrop_for("white") == "black" and backdrop_for("red") == "white"


def test_free_colour_images_for_the_autoencoder_are_seeded_and_leave_the_named_colours() -> None:
    """The VAE also learns from these, so it can reproduce a brand's colours, not only the eight names."""
    first = [np.asarray(make_free_image(np.random.default_rng(5))) for _ in range(2)]
    assert first[0].tobytes() == first[1].tobytes() and first[0].shape == (64, 64, 3)
    rng = np.random.default_rng(6)
    pixels = np.concatenate([np.asarray(make_free_image(rng)).reshape(-1, 3) for _ in range(50)])
    named = np.array(list(COLOURS.values()))
    off_table = np.abs(pixels[:, None, :].astype(int) - named[None]).sum(-1).min(1) > 60
    assert off_table.mean() > 0.8  # most pixels are far from every named colour
    assert len({tuple(p) for p in pixels[::97]}) > 80  # many distinct colours, not a few
    images = [np.asarray(make_free_image(rng)) for _ in range(50)]
    assert (
        sum(len(np.unique(im.reshape(-1, 3), axis=0)) >= 3 for im in images) >= 20
    )  # objects, some two-tone


def test_the_classifier_reads_the_object_colour_back() -> None:
    samples = make_dataset(300, seed=1)
    right = sum(classify_colour(s.image) == s.colour for s in samples)
    assert right == len(samples)
    noisy = sum(
        classify_colour(_noisy(s.image, i), s.background) == s.colour for i, s in enumerate(samples[:100])
    )
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
