"""Campaigns end to end on the built-in model: master -> single-factor cells (verified) -> brand checks ->
review -> export pack (exact sizes, caps, manifest, same bytes again) -> results -> winner."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from io import BytesIO

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.api import Studio
from studio.campaign_schemas import (
    CampaignCreateRequest,
    CheckThresholds,
    CreativeCreateRequest,
    ExportRequest,
    OverlayRequest,
    RegionInstructionRequest,
    ReviewRequest,
    VariantGroupRequest,
)
from studio.editing.encode import read_image_metadata
from studio.errors import InvalidInput, StudioError
from studio.schemas import GenerateRequest, LoraChoice, PaletteEntry, StyleGuideRequest, UploadedFile
from tests.fixtures import png_bytes

SIZE = 128


def _pixels(studio: Studio, sha: str) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(studio.read_blob(sha))).convert("RGB"))



@pytest.fixture
def campaign(trained_studio: Studio) -> tuple[Studio, int, int, np.ndarray]:
    """A campaign with one master (LoRA 0.8, 128 px, product mask in the middle) and its control cell."""
    studio = trained_studio
    kit = studio.list_kits()[0]
    studio.set_style_guide(kit.id, StyleGuideRequest.of(
        palette=(PaletteEntry(hex="#1E3A8A", name="navy"), PaletteEntry(hex="#FACC15", name="sunflower")),
        banned_terms=("cheap",)))  # fmt: skip
    # The placeholder model draws coloured noise, far from any palette: this kit accepts more distance.
    studio.set_check_thresholds(kit.id, CheckThresholds(palette_pass=60, palette_warn=80))
    lora = studio.list_loras()[0]
    master = studio.generate(GenerateRequest.of(prompt="on a marble table", kit_id=kit.id, seed=9, width=SIZE,
                                                height=SIZE, num_inference_steps=4,
                                                loras=(LoraChoice(lora_id=lora.id, weight=0.8),)))  # fmt: skip
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rectangle((40, 36, 87, 91), fill=255)
    mask_sha = studio.upload_mask(UploadedFile(name="product.png", data=png_bytes(mask)))
    camp = studio.create_campaign(CampaignCreateRequest.of(kit_id=kit.id, name="Spring launch", metric="ctr"))
    creative = studio.add_creative(CreativeCreateRequest.of(
        campaign_id=camp.id, generation_id=master.id, product_mask=mask_sha,
        overlay=OverlayRequest.of(headline="Fresh", cta="Buy")))  # fmt: skip
    return studio, camp.id, creative.id, np.asarray(mask) > 0


def test_masked_cells_keep_every_pixel_outside_the_edit(campaign: tuple[Studio, int, int, np.ndarray]) -> None:
    studio, camp, creative, product = campaign
    control = studio.list_variants(camp)[0]
    assert control.factor == "control" and control.cell_id.endswith("-1")
    before = _pixels(studio, control.image_sha256)
    cells = studio.make_variants(VariantGroupRequest.of(creative_id=creative, factor="background",
                                                        values=("on a beach", "in a forest"), hypothesis="beach wins"))  # fmt: skip
    assert [c.value for c in cells] == ["on a beach", "in a forest"] and len({c.group_key for c in cells}) == 1
    for cell in cells:
        after = _pixels(studio, cell.image_sha256)
        assert np.array_equal(before[product], after[product])  # the product: byte-identical
        assert not np.array_equal(before[~product], after[~product])  # the background: repainted
        assert cell.invariance["outside_edit_identical"] is True
        fidelity = next(c for c in cell.checks if c.name == "product_fidelity")
        assert fidelity.value == pytest.approx(1.0) and fidelity.status == "pass"
    colour = studio.make_variants(VariantGroupRequest.of(creative_id=creative, factor="product_colour", values=("red",)))[0]
    after = _pixels(studio, colour.image_sha256)
    assert np.array_equal(before[~product], after[~product]) and not np.array_equal(before[product], after[product])
    prop = studio.make_variants(VariantGroupRequest.of(creative_id=creative, factor="prop", values=("a lemon",),
                                                       region=(0, 0, 32, 32)))[0]  # fmt: skip
    after = _pixels(studio, prop.image_sha256)
    assert np.array_equal(before[32:], after[32:]) and np.array_equal(before[:, 32:], after[:, 32:])


def test_recipe_cells_change_only_their_factor(campaign: tuple[Studio, int, int, np.ndarray]) -> None:
    studio, camp, creative, _ = campaign
    word = studio.make_variants(VariantGroupRequest.of(creative_id=creative, factor="prompt_word", search="marble",
                                                       values=("wooden",)))[0]  # fmt: skip
    assert word.invariance["recipe_fields_differing"] == ["prompt"] and word.invariance["only_factor_differs"]
    weight = studio.make_variants(VariantGroupRequest.of(creative_id=creative, factor="lora_weight", values=("0.3",)))[0]
    assert weight.invariance["recipe_fields_differing"] == ["loras"]
    master = studio.get_generation(studio.list_creatives(camp)[0].generation_id)
    again = studio.get_generation(weight.generation_id)  # type: ignore[arg-type]
    assert again.seed == master.seed and [x.weight for x in again.loras] == [0.3]
    copy = studio.make_variants(VariantGroupRequest.of(creative_id=creative, factor="copy", copy_field="cta",
                                                       values=("Shop now", "=SUM(A1:A9)")))  # fmt: skip
    assert {c.image_sha256 for c in copy} == {studio.list_variants(camp)[0].image_sha256}  # the master's pixels
    assert [c.overlay["cta"] for c in copy] == ["Shop now", "=SUM(A1:A9)"]
    assert copy[0].overlay["headline"] == "Fresh"
    with pytest.raises(InvalidInput) as info:
        studio.make_variants(VariantGroupRequest.of(creative_id=creative, factor="prompt_word", search="velvet",
                                                    values=("x",)))  # fmt: skip
    assert info.value.field == "search"


def test_checks_review_export_results_winner(campaign: tuple[Studio, int, int, np.ndarray]) -> None:
    studio, camp, creative, _ = campaign
    cheap = studio.make_variants(VariantGroupRequest.of(creative_id=creative, factor="copy", values=("Cheap deal",)))[0]
    banned = next(c for c in cheap.checks if c.name == "banned_terms")
    assert banned.status == "fail" and cheap.checks_status == "fail"
    fmt = studio.make_variants(VariantGroupRequest.of(creative_id=creative, factor="format",
                                                      values=("google_banner_300x250",)))[0]  # fmt: skip
    assert Image.open(BytesIO(studio.read_blob(fmt.image_sha256))).size == (300, 250)
    assert fmt.invariance["product_in_frame"] is True
    control = studio.list_variants(camp)[0]
    palette = next(c for c in control.checks if c.name == "palette")  # the control is checked like every cell
    assert "pass ≤ 60" in palette.detail and palette.value is not None  # the kit's thresholds, not the defaults
    assert control.checks_status != "fail", [c.detail for c in control.checks]
    for cell in (control, fmt):
        studio.review_variant(ReviewRequest.of(variant_id=cell.id, to_status="in_review", reviewer="ana"))
        studio.review_variant(ReviewRequest.of(variant_id=cell.id, to_status="approved", reviewer="ben", comment="ok"))
    studio.review_variant(ReviewRequest.of(variant_id=cheap.id, to_status="in_review", reviewer="ana"))
    with pytest.raises(InvalidInput):  # failed checks: no approval without a recorded reason
        studio.review_variant(ReviewRequest.of(variant_id=cheap.id, to_status="approved", reviewer="ben"))
    forced = studio.review_variant(ReviewRequest.of(variant_id=cheap.id, to_status="approved", reviewer="ben",
                                                    override_reason="legal cleared the word"))  # fmt: skip
    assert forced.override_reason == "legal cleared the word"
    assert [(h.from_status, h.to_status, h.reviewer) for h in studio.variant_reviews(cheap.id)] == [
        ("draft", "in_review", "ana"), ("in_review", "approved", "ben")]
    with pytest.raises(InvalidInput):  # approved -> rejected is not a move
        studio.review_variant(ReviewRequest.of(variant_id=cheap.id, to_status="rejected", reviewer="ben"))

    channels = ("meta_feed_square", "google_banner_320x50")
    export = studio.export_campaign(ExportRequest.of(campaign_id=camp, channels=channels))
    name, data = studio.export_file(export.id)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode("utf-8"))))
        manifest = json.loads(archive.read("manifest.json"))
        assert len(rows) == 5 == export.file_count  # control + cheap in 2 channels, the format cell in its own
        for row in rows:
            image = archive.read(row["file"])
            assert Image.open(io.BytesIO(image)).size == (int(row["width"]), int(row["height"]))
            if row["format_key"].startswith("google_banner_"):
                assert len(image) <= 150_000 and row["file"].endswith(".jpg")
            meta = read_image_metadata(image)
            assert b"compositeWithTrainedAlgorithmicMedia" in (meta.xmp or b"") and meta.recipe is not None
    assert name.endswith(".zip") and manifest
    again = studio.export_campaign(ExportRequest.of(campaign_id=camp, channels=channels))
    assert studio.export_file(again.id)[1] == data  # the same snapshot, the same bytes

    results = "cell_id,impressions,clicks,conversions\n" + f"{control.cell_id},10000,100,5\n{fmt.cell_id},10000,190,9\n"
    studio.import_results(camp, results.encode())
    won = studio.campaign_winner(camp)
    assert won.status == "winner" and won.cell_id == fmt.cell_id
    before = [(v.cell_id, v.clicks) for v in studio.list_variants(camp)]
    with pytest.raises(InvalidInput) as info:  # one bad row: nothing imported
        studio.import_results(camp, f"cell_id,impressions,clicks,conversions\n{control.cell_id},5,9,0\n".encode())
    assert "line 2" in str(info.value)
    assert [(v.cell_id, v.clicks) for v in studio.list_variants(camp)] == before


def test_region_instruction_and_bad_requests(campaign: tuple[Studio, int, int, np.ndarray]) -> None:
    studio, camp, creative, _ = campaign
    control = studio.list_variants(camp)[0]
    made = studio.mark_region(RegionInstructionRequest.of(variant_id=control.id, reviewer="ana", x=96, y=96, width=32,
                                                          height=32, instruction="a green leaf"))  # fmt: skip
    assert made.parent_variant_id == control.id and made.factor == "region" and made.status == "draft"
    before, after = _pixels(studio, control.image_sha256), _pixels(studio, made.image_sha256)
    assert np.array_equal(before[:96], after[:96]) and not np.array_equal(before[96:, 96:], after[96:, 96:])
    count = len(studio.list_variants(camp))
    for bad, field in ((dict(factor="format", values=("billboard_9000",)), "values"),
                       (dict(factor="prop", values=("x",), region=(120, 120, 64, 64)), "region")):  # fmt: skip
        with pytest.raises(StudioError) as info:
            studio.make_variants(VariantGroupRequest.of(creative_id=creative, **bad))
        assert info.value.field == field
    with pytest.raises(StudioError):
        studio.mark_region(RegionInstructionRequest.of(variant_id=control.id, reviewer="ana", x=120, y=0, width=64,
                                                       height=8, instruction="x"))  # fmt: skip
    assert len(studio.list_variants(camp)) == count  # refused before any work: nothing stored
