"""make_identity validates each kit field and names the field it refuses; errors pickle cleanly."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from brand_kits import (
    ImageTooLarge,
    ImageTooSmall,
    InvalidImage,
    InvalidKitField,
    KitError,
    KitIdentity,
    UnsupportedImageFormat,
    make_identity,
)


def test_valid_identity() -> None:
    identity = make_identity(
        "  Café Crème Bottles 2024!  ", "ccb2024", "water bottle", "Glass bottles.\nMatte."
    )
    assert identity == KitIdentity(
        name="Café Crème Bottles 2024!",
        slug="cafe-creme-bottles-2024",
        trigger_token="ccb2024",
        class_noun="water bottle",
        description="Glass bottles.\nMatte.",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Acme", "acme"),
        ("ACME -- Summer/Winter   '24", "acme-summer-winter-24"),
        ("Ωmega Ünïcode ﬁne", "mega-unicode-fine"),
        ("x" * 100, "x" * 64),
        ("a" * 63 + " b", "a" * 63),  # no trailing hyphen after the cut
        ("日本 Tea", "tea"),
    ],
)
def test_slug_is_derived_from_the_name(name: str, slug: str) -> None:
    assert make_identity(name, "sks", "bottle").slug == slug


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"name": "   "}, "name", "name is empty"),
        ({"name": "n" * 121}, "name", "at most 120"),
        ({"name": "Acme\x00"}, "name", "name contains control"),
        ({"name": "Acme\u202eevil"}, "name", "text-direction"),
        ({"name": "日本茶"}, "name", "slug"),
        ({"name": 42}, "name", "name must be text"),
        ({"trigger_token": "ab"}, "trigger_token", "3 to 32"),
        ({"trigger_token": "a" * 33}, "trigger_token", "3 to 32"),
        ({"trigger_token": "Sks"}, "trigger_token", "lowercase"),
        ({"trigger_token": "my token"}, "trigger_token", "'my_token'"),
        ({"trigger_token": "sks!"}, "trigger_token", "underscores"),
        ({"trigger_token": "bottle"}, "trigger_token", "common word"),
        ({"trigger_token": "shoe"}, "trigger_token", "common word"),
        ({"trigger_token": "red"}, "trigger_token", "common word"),
        ({"trigger_token": "the"}, "trigger_token", "common word"),
        ({"trigger_token": "photo"}, "trigger_token", "common word"),
        ({"class_noun": ""}, "class_noun", "1 to 40"),
        ({"class_noun": "b" * 41}, "class_noun", "1 to 40"),
        ({"class_noun": "bottle2"}, "class_noun", "only letters"),
        ({"class_noun": "men's shoe"}, "class_noun", "only letters"),
        ({"class_noun": " bottle"}, "class_noun", "single spaces"),
        ({"class_noun": "water  bottle"}, "class_noun", "single spaces"),
        ({"description": "d" * 2001}, "description", "at most 2000"),
        ({"description": "ok\x1b[2J"}, "description", "control"),
    ],
)
def test_each_bad_field_is_named(kwargs: dict[str, object], field: str, fragment: str) -> None:
    arguments: dict[str, object] = {"name": "Acme", "trigger_token": "acm3", "class_noun": "bottle"}
    arguments.update(kwargs)
    with pytest.raises(InvalidKitField) as caught:
        make_identity(**arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert field in str(caught.value)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("token", ["sks", "bottle_1", "red2", "zxqbottle", "_x_", "a1b", "x" * 32, "ohwx"])
def test_accepted_trigger_tokens(token: str) -> None:
    assert make_identity("Acme", token, "bottle").trigger_token == token


@pytest.mark.parametrize("noun", ["bottle", "water bottle", "t-shirt", "Eau de parfum", "chaussure"])
def test_accepted_class_nouns(noun: str) -> None:
    assert make_identity("Acme", "acm3", noun).class_noun == noun


def test_description_may_be_empty_or_2000_characters() -> None:
    assert make_identity("Acme", "acm3", "bottle").description == ""
    assert len(make_identity("Acme", "acm3", "bottle", "d" * 2000).description) == 2000


@pytest.mark.parametrize(
    "error",
    [
        InvalidKitField("trigger_token", "trigger_token is bad"),
        InvalidImage.because("the file is empty"),
        UnsupportedImageFormat.detected("TIFF"),
        ImageTooLarge.for_pixels(40_000_000, 30_000, 30_000),
        ImageTooLarge.for_bytes(50 * 1024 * 1024, 60 * 1024 * 1024),
        ImageTooSmall.for_side(64, 10, 10),
        KitError("plain"),
    ],
)
def test_errors_pickle_with_message_and_field(error: KitError) -> None:
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - bytes this test just made
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert getattr(copy, "field", None) == getattr(error, "field", None)


def test_error_messages_say_what_and_how() -> None:
    assert str(ImageTooLarge.for_pixels(40_000_000, 30_000, 30_000)) == (
        "image too large (max 40 MP): 30000x30000 is 900 MP; downscale it and upload it again"
    )
    assert str(ImageTooLarge.for_bytes(50 * 1024 * 1024)).startswith("image too large (max 50 MB); ")
    assert str(UnsupportedImageFormat.detected(None)).startswith(
        "unsupported image format (allowed: PNG, JPEG, WebP); convert it"
    )
