"""Brand kits through the facade: masks and logos, near-duplicates, captions, rights, style guide,
versions, exports other tools read, and kit archives that round-trip (or are refused whole)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from safetensors import safe_open

from studio.api import Studio
from studio.errors import Conflict, InvalidInput
from studio.schemas import (
    CaptionBulkEdit,
    GenerateRequest,
    KitCreateRequest,
    PaletteEntry,
    RightsRequest,
    StyleGuideRequest,
    TrainRequest,
    UploadedFile,
)
from tests.fixtures import minimal_pdf, product_photo, product_uploads


def _png(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _kit(studio: Studio, photos: list[UploadedFile] | None = None, **kw: str) -> int:
    fields = {"name": "Acme Bottle", "trigger_token": "acm_bottle", "class_noun": "bottle", **kw}
    return studio.create_kit(KitCreateRequest.of(**fields), photos if photos is not None else product_uploads(3)).id


def test_transparent_photo_keeps_its_mask_and_logo_keeps_alpha(studio: Studio) -> None:
    rgba = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
    rgba.paste((250, 200, 0, 255), (20, 20, 76, 76))
    kit_id = _kit(studio, [UploadedFile(name="cutout.png", data=_png(rgba))], background_color="#102030")
    [photo] = studio.list_assets(kit_id)
    assert photo.mask_sha256 is not None
    with Image.open(io.BytesIO(studio.read_blob(photo.blob_sha256))) as img:
        assert img.mode == "RGB" and img.getpixel((0, 0)) == (16, 32, 48)
    with Image.open(io.BytesIO(studio.read_blob(photo.mask_sha256))) as mask:
        assert mask.getpixel((0, 0)) == 0 and mask.getpixel((40, 40)) == 255
    [logo] = studio.add_logos(kit_id, [UploadedFile(name="logo.png", data=_png(rgba))])
    with Image.open(io.BytesIO(studio.read_blob(logo.blob_sha256))) as img:
        assert img.mode == "RGBA" and img.getpixel((0, 0))[3] == 0
    assert studio.get_kit(kit_id).logo_count == 1 and [a.kind for a in studio.list_assets(kit_id, None)] == ["photo", "logo"]
    with pytest.raises(InvalidInput, match="logos must be PNG or WebP"):
        studio.add_logos(kit_id, [UploadedFile(name="logo.jpg", data=_png(rgba.convert("RGB"), "JPEG"))])


def test_near_duplicate_and_small_photos_are_flagged_not_refused(studio: Studio) -> None:
    kit_id = _kit(studio)
    with Image.open(io.BytesIO(product_photo(0))) as img:
        again = _png(img.resize((90, 90)).convert("RGB"), "JPEG", quality=85)
    [dup] = studio.add_photos(kit_id, [UploadedFile(name="same-shot.jpg", data=again)])
    assert any("near-duplicate of photo_0.png" in w for w in dup.warnings)
    assert any("smaller than 512 px" in w for w in dup.warnings)  # the built-in model is SD 1.x
    assert studio.get_kit(kit_id).photo_count == 4


def test_captions_edit_one_and_in_bulk_with_lint(studio: Studio) -> None:
    kit_id = _kit(studio)
    studio.set_style_guide(kit_id, StyleGuideRequest.of(banned_terms=("cheap",)))
    first, *_ = studio.list_assets(kit_id)
    edited = studio.set_caption(kit_id, first.id, "a cheap bottle on slate")
    assert any("trigger token 'acm_bottle'" in w for w in edited.caption_warnings)
    assert any("banned terms: 'cheap'" in w for w in edited.caption_warnings)
    rows = studio.bulk_edit_captions(kit_id, CaptionBulkEdit.of(find="cheap", replace="premium", suffix="studio light"))
    assert rows[0].caption == "a premium bottle on slate studio light"
    assert rows[1].caption == "a photo of acm_bottle bottle studio light"
    # The built-in tokenizer is byte-level: a long caption overflows the model's 77 tokens, and says so.
    long = studio.set_caption(kit_id, first.id, "acm_bottle " + "on a wet slate table " * 6)
    assert any("tokens; the base model reads only 77" in w for w in long.caption_warnings)
    with pytest.raises(InvalidInput) as info:
        studio.set_caption(kit_id, first.id, "two\nlines")
    assert info.value.field == "caption"
    assert studio.list_assets(kit_id)[0].caption == long.caption


def test_style_guide_shapes_prompts_and_rerender_keeps_the_recorded_ones(studio: Studio) -> None:
    kit_id = _kit(studio)
    guide = studio.set_style_guide(kit_id, StyleGuideRequest.of(
        palette=(PaletteEntry(hex="#1f3a93", name="Acme navy"), PaletteEntry(hex="F4C20D")),
        tone_words=("clean", "premium"), donts=("cluttered background",), banned_terms=("cheap",)))  # fmt: skip
    assert guide.palette[0].hex == "#1F3A93" and guide.palette[1].name  # a name is derived when missing
    assert "clean" in guide.style_fragment and "Acme navy" in guide.style_fragment
    assert guide.negative_prompt == "cluttered background, cheap"
    gen = studio.generate(GenerateRequest.of(prompt="on slate", negative_prompt="blurry", kit_id=kit_id,
                                             seed=5, num_inference_steps=4))  # fmt: skip
    assert gen.prompt == f"acm_bottle bottle, on slate, {guide.style_fragment}"
    assert gen.negative_prompt == "blurry, cluttered background, cheap"
    studio.set_style_guide(kit_id, StyleGuideRequest.of(tone_words=("loud",)))
    again = studio.rerender(gen.id)
    assert (again.prompt, again.negative_prompt) == (gen.prompt, gen.negative_prompt)
    assert again.images[0].pixel_sha256 == gen.images[0].pixel_sha256
    with pytest.raises(InvalidInput) as info:
        studio.set_style_guide(kit_id, StyleGuideRequest.of(palette=(PaletteEntry(hex="#12345G"),)))
    assert info.value.field.startswith("palette")


def test_pdf_and_reference_image_extraction_are_suggestions(studio: Studio) -> None:
    found = studio.extract_style_from_pdf(UploadedFile(name="guide.pdf", data=minimal_pdf()))
    assert "#F4C20D" in [c.hex for c in found.colors] and "Helvetica-Bold" in found.fonts
    assert "Sunflower" in found.text_excerpt
    with pytest.raises(InvalidInput, match="not a PDF"):
        studio.extract_style_from_pdf(UploadedFile(name="guide.pdf", data=b"GIF89a not a pdf"))
    swatches = studio.extract_palette(UploadedFile(name="ref.png", data=product_photo(0)))
    assert swatches[0].hex and abs(sum(s.share for s in swatches) - 1) < 1e-6


def test_training_uses_an_immutable_version_and_carries_rights(studio: Studio) -> None:
    kit_id = _kit(studio)
    first = studio.list_assets(kit_id)[0]
    studio.set_rights(kit_id, first.id, RightsRequest.of(source="studio shoot 2026", licence="CC-BY-4.0", consent=True))
    v1 = studio.create_version(kit_id)
    assert studio.create_version(kit_id).id == v1.id  # unchanged kit: same version
    run = studio.train_lora(TrainRequest.of(kit_id=kit_id, max_train_steps=2))
    assert run.kit_version == v1.number
    studio.set_caption(kit_id, first.id, "acm_bottle bottle, new caption")
    v2 = studio.create_version(kit_id)
    assert v2.number == v1.number + 1
    assert [v.number for v in studio.list_versions(kit_id)] == [v2.number, v1.number]
    assert run.lora is not None
    with safe_open(str(studio.blobs.path_for(run.lora.sha256)), "pt") as f:
        meta = f.metadata()
    assert meta["modelspec.license"] == "CC-BY-4.0"
    assert "2 without recorded consent" in meta["ss_training_comment"]
    assert f"kit version {v1.number}" in meta["ss_training_comment"]


def test_exports_load_in_datasets_and_kohya_layout(studio: Studio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    kit_id = _kit(studio)
    folder = studio.export_training_set(kit_id, "imagefolder", tmp_path / "hf")
    from datasets import load_dataset

    ds = load_dataset("imagefolder", data_dir=str(folder), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 3 and set(ds["text"]) == {"a photo of acm_bottle bottle"}
    assert ds[0]["image"].size == (96, 96)
    kohya = studio.export_training_set(kit_id, "kohya", tmp_path / "kohya")
    [sub] = [p for p in kohya.iterdir() if p.is_dir()]
    assert sub.name == "10_acm_bottle bottle"
    assert sorted(p.suffix for p in sub.iterdir()) == [".png"] * 3 + [".txt"] * 3
    with zipfile.ZipFile(io.BytesIO(studio.export_training_zip(kit_id, "imagefolder"))) as zf:
        assert "train/metadata.jsonl" in zf.namelist()


def test_kit_archive_round_trips_into_another_install(make_studio: Callable[..., Studio], tmp_path: Path) -> None:
    source = make_studio()
    kit_id = _kit(source)
    source.set_style_guide(kit_id, StyleGuideRequest.of(tone_words=("clean",)))
    source.set_rights(kit_id, source.list_assets(kit_id)[0].id, RightsRequest.of(licence="owned", consent=True))
    archive = source.export_kit_archive(kit_id, tmp_path / "kit.zip")
    assert (tmp_path / "kit.zip").read_bytes() == archive
    target = make_studio("other-install")
    kit = target.import_kit_archive(archive)
    assert (kit.name, kit.trigger_token, kit.photo_count) == ("Acme Bottle", "acm_bottle", 3)
    assert target.get_style_guide(kit.id).tone_words == ("clean",)
    src, dst = source.list_assets(kit_id), target.list_assets(kit.id)
    assert [(a.blob_sha256, a.caption, a.licence, a.consent) for a in src] == [
        (a.blob_sha256, a.caption, a.licence, a.consent) for a in dst
    ]
    # Identical kit: the frozen versions of both sides have the same manifest hash.
    assert source.create_version(kit_id).manifest_sha256 == target.create_version(kit.id).manifest_sha256
    assert target.read_blob(dst[0].blob_sha256) == source.read_blob(src[0].blob_sha256)


def test_bad_or_duplicate_archive_is_refused_and_stores_nothing(studio: Studio, tmp_path: Path) -> None:
    kit_id = _kit(studio)
    archive = studio.export_kit_archive(kit_id)
    with pytest.raises(Conflict, match="already exists"):
        studio.import_kit_archive(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    manifest["kit"]["slug"], manifest["kit"]["trigger_token"] = "other-kit", "oth_kit"
    members["manifest.json"] = json.dumps(manifest).encode()
    victim = next(n for n in members if n.startswith("blobs/"))
    members[victim] = members[victim][:-20] + b"\0" * 20  # content no longer matches its hash
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    blobs_before = sorted(studio.blobs.iter_shas())
    with pytest.raises(InvalidInput):
        studio.import_kit_archive(buf.getvalue())
    assert [k.slug for k in studio.list_kits()] == ["acme-bottle"]
    assert sorted(studio.blobs.iter_shas()) == blobs_before
