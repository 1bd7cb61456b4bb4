"""KitSnapshot / AssetRecord: the validated, DB-free kit description that archives carry."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kit_archive import make_kit

from brand_kits.errors import InvalidKitField, KitError
from brand_kits.snapshot import AssetRecord, KitSnapshot, kit_manifest, parse_kit_manifest

SHA = "a" * 64
# manifest_sha256 of the fixed snapshot below: if this changes, every archive's kit hash changes too.
GOLDEN = "bfa418c2dd2d57b02dc3826ebe64819ed412850ddf048dccb343758085b5474d"


def small_snapshot() -> KitSnapshot:
    return KitSnapshot(
        name="Acme",
        slug="acme",
        trigger_token="acm3",
        class_noun="bottle",
        description="",
        background="#FFFFFF",
        style_guide={"b": [1, 2.5, None, True], "a": {"ü": "ß"}},
        assets=(AssetRecord(SHA, "photo", "p.png", "acm3 bottle", 512, 640),),
    )


def test_round_trip_and_equality() -> None:
    snapshot, _ = make_kit()
    assert KitSnapshot.from_dict(snapshot.to_dict()) == snapshot
    assert KitSnapshot.from_dict(json.loads(json.dumps(snapshot.to_dict()))) == snapshot
    assert hash(KitSnapshot.from_dict(snapshot.to_dict())) == hash(snapshot)
    assert parse_kit_manifest(kit_manifest(snapshot)) == (
        snapshot,
        {f"blobs/{sha}.png": sha for sha in snapshot.blob_shas()},
    )


def test_manifest_sha256_is_stable_and_independent_of_key_order() -> None:
    snapshot = small_snapshot()
    digest = snapshot.manifest_sha256()
    assert len(digest) == 64 and digest == small_snapshot().manifest_sha256()
    shuffled_items = list(snapshot.to_dict().items())
    random.Random(3).shuffle(shuffled_items)
    assert KitSnapshot.from_dict(dict(shuffled_items)).manifest_sha256() == digest
    assert snapshot.canonical_json().startswith(b'{"assets":[{"caption":"acm3 bottle","consent":false,')
    assert '"a":{"ü":"ß"}'.encode() in snapshot.canonical_json()  # ensure_ascii=False, no spaces
    assert replace(snapshot, description="x").manifest_sha256() != digest


def test_manifest_sha256_golden_value() -> None:
    canonical = small_snapshot().canonical_json()
    assert hashlib.sha256(canonical).hexdigest() == small_snapshot().manifest_sha256() == GOLDEN


def test_style_guide_is_copied_not_shared() -> None:
    guide: dict[str, Any] = {"palette": ["#000000"]}
    snapshot = replace(small_snapshot(), style_guide=guide)
    guide["palette"].append("#FFFFFF")
    assert snapshot.style_guide == {"palette": ["#000000"]}
    snapshot.to_dict()["style_guide"]["palette"].append("#123456")
    assert snapshot.style_guide == {"palette": ["#000000"]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sha256": "A" * 64}, "sha256"),
        ({"sha256": "a" * 63}, "sha256"),
        ({"kind": "video"}, "kind"),
        ({"label": "../x.png"}, "label"),
        ({"label": ""}, "label"),
        ({"label": "a\u202ex"}, "label"),
        ({"caption": "two\nlines"}, "caption"),
        ({"caption": "x" * 1001}, "caption"),
        ({"width": 0}, "width"),
        ({"width": True}, "width"),
        ({"height": 1.5}, "height"),
        ({"consent": "yes"}, "consent"),
        ({"mask_sha256": "nothex"}, "mask_sha256"),
        ({"source": "a\x00b"}, "source"),
    ],
)
def test_bad_asset_fields(change: dict[str, Any], field: str) -> None:
    data = small_snapshot().assets[0].to_dict() | change
    with pytest.raises(InvalidKitField) as caught:
        AssetRecord.from_dict(data)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": " Acme"}, "name"),
        ({"slug": "Acme"}, "slug"),
        ({"slug": "a--b"}, "slug"),
        ({"trigger_token": "a b"}, "trigger_token"),
        ({"class_noun": "b0ttle"}, "class_noun"),
        ({"background": "#FFF"}, "background"),
        ({"style_guide": {"x": float("nan")}}, "style_guide"),
        ({"style_guide": {"x": {1, 2}}}, "style_guide"),
        ({"style_guide": ["not", "an", "object"]}, "style_guide"),
    ],
)
def test_bad_kit_fields(change: dict[str, Any], field: str) -> None:
    data = small_snapshot().to_dict() | change
    with pytest.raises(InvalidKitField) as caught:
        KitSnapshot.from_dict(data)
    assert caught.value.field == field


def test_unknown_and_missing_keys_are_refused() -> None:
    data = small_snapshot().to_dict()
    with pytest.raises(KitError, match=r"kit has unknown keys \['colour'\]"):
        KitSnapshot.from_dict(data | {"colour": "red"})
    with pytest.raises(KitError, match=r"kit is missing keys \['slug'\]"):
        KitSnapshot.from_dict({k: v for k, v in data.items() if k != "slug"})
    asset = data["assets"][0]
    with pytest.raises(KitError, match=r"asset has unknown keys \['path'\]"):
        KitSnapshot.from_dict(data | {"assets": [asset | {"path": "/etc/passwd"}]})
    # Optional asset fields may be left out; required ones may not.
    minimal = {k: asset[k] for k in ("sha256", "kind", "label", "caption", "width", "height")}
    assert AssetRecord.from_dict(minimal) == small_snapshot().assets[0]
    with pytest.raises(KitError, match=r"missing keys \['width'\]"):
        AssetRecord.from_dict({k: v for k, v in minimal.items() if k != "width"})
    for not_a_dict in ([], "kit", None):
        with pytest.raises(KitError, match="must be a JSON object"):
            KitSnapshot.from_dict(not_a_dict)


@settings(max_examples=60, deadline=None)
@given(
    guide=st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=10,
        ),
        max_size=4,
    )
)
def test_property_any_json_style_guide_round_trips(guide: dict[str, Any]) -> None:
    snapshot = replace(small_snapshot(), style_guide=guide)
    again = KitSnapshot.from_dict(json.loads(snapshot.canonical_json()))
    assert again == snapshot
    assert again.manifest_sha256() == snapshot.manifest_sha256()
