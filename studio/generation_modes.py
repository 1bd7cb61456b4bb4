"""The facade's side of the generation modes: input uploads, inputs read back by hash, lineage, send-to.

- :func:`upload_input_image` / :func:`upload_mask`: validated like kit uploads (``brand_kits``),
  stored as normalised PNG blobs (RGB / grayscale) and recorded; requests name them by SHA-256.
- :func:`prepare_mode_inputs`: before any work, read the request's inputs by hash, check them
  (present, mask size, canvas, ControlNet file) and return the engine job fields, the recipe fields
  and the lineage (``parent_id`` when the input is one of our images).
- :func:`send_to`: "use as input": a prefilled request whose input is one of our images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any

import brand_kits
import storage
from studio import errors
from studio.mode_fields import (
    MAX_CANVAS,
    check_canvas,
    mode_request_fields,
    require_mode_inputs,
    resolved_strength,
)
from studio.schemas import GenerateRequest, LoraChoice, UploadedFile

if TYPE_CHECKING:
    from PIL.Image import Image

    from studio.api import Studio
    from studio.controlnets import ResolvedControlNet
    from studio.models import ResolvedModel

PNG_COMPRESS_LEVEL = 3
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


@dataclass(frozen=True)
class ModeInputs:
    width: int  #: the size the input is fitted to (outpaint: before the canvas grows)
    height: int
    output_size: tuple[int, int]
    job_fields: dict[str, Any] = field(default_factory=dict)  #: GenerationJob keyword arguments
    recipe: dict[str, Any] = field(default_factory=dict)  #: keys added to the recipe
    parent_id: int | None = None
    source_type: str = TRAINED  #: IPTC digital source type of the output
    #: role (init_image, mask, control_image) -> blob sha256: recorded as the generation's inputs, so
    #: blob GC keeps them for "re-render" (GenerationRepo.create(inputs=...))
    blobs: dict[str, str] = field(default_factory=dict)


# ----- uploads ------------------------------------------------------------------------------------
def upload_input_image(studio: Studio, file: UploadedFile) -> str:
    """Validate an image to use as input, store it (normalised RGB PNG) and return its SHA-256."""
    valid = _validate(studio, file, (255, 255, 255), "init_image")
    return _store(studio, valid.png_bytes)


def upload_mask(studio: Studio, file: UploadedFile) -> str:
    """Validate a mask (white = repaint; transparent = keep), store it as a grayscale PNG, return its SHA-256."""
    from PIL import Image

    valid = _validate(studio, file, (0, 0, 0), "mask")
    with Image.open(BytesIO(valid.png_bytes), formats=["PNG"]) as image:
        gray = image.convert("L")
    buffer = BytesIO()
    gray.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return _store(studio, buffer.getvalue())


def _validate(studio: Studio, file: UploadedFile, background: tuple[int, int, int], field: str) -> Any:
    limits = brand_kits.IngestLimits(max_bytes=studio.settings.max_upload_mb * 1024 * 1024)
    try:
        return brand_kits.validate_image(file.data, file.name, limits, background)
    except brand_kits.KitError as exc:
        label = brand_kits.safe_label(file.name)
        raise errors.InvalidInput(f"{label}: {exc}; nothing was stored", field=field) from exc


def _store(studio: Studio, data: bytes) -> str:
    ref = studio.blobs.put_bytes(data)
    with studio.db.session() as s:
        storage.BlobRepo(s).record(ref, "image/png")
    return ref.sha256


def read_input(studio: Studio, sha256: str, field: str) -> Image:
    """A stored input image by hash (decoded, hash-verified); NotFound / InvalidInput name ``field``."""
    from PIL import Image, UnidentifiedImageError

    with studio.db.session() as s:
        recorded = storage.BlobRepo(s).get(sha256) is not None
    if not recorded or not studio.blobs.exists(sha256):
        raise errors.NotFound(f"no stored image {sha256[:12]}...; upload it again", field=field)
    data = studio.blobs.read_bytes(sha256)
    try:
        with Image.open(BytesIO(data), formats=["PNG"]) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise errors.InvalidInput(f"stored file {sha256[:12]}... is not an uploaded image", field=field) from exc


# ----- a request's inputs -------------------------------------------------------------------------
def default_size(size: tuple[int, int], limit: int = MAX_CANVAS) -> tuple[int, int]:
    """An input's own size, scaled down to fit ``limit`` if needed, rounded down to multiples of 8."""
    scale = min(1.0, limit / max(size))
    return tuple(max(64, int(side * scale) // 8 * 8) for side in size)  # type: ignore[return-value]


def prepare_mode_inputs(studio: Studio, req: GenerateRequest, model: ResolvedModel) -> ModeInputs:
    """1) inputs present, 2) read by hash, 3) sizes, 4) ControlNet, 5) job fields, recipe, lineage."""
    if req.mode == "txt2img":
        width, height = req.width or model.default_size, req.height or model.default_size
        return ModeInputs(width, height, (width, height))
    GenerateRequest.of(**req.model_dump())  # re-check: model_copy(update=...) skips validation
    require_mode_inputs(req)
    init = read_input(studio, req.init_image, "init_image").convert("RGB") if req.init_image else None
    mask = read_input(studio, req.mask, "mask").convert("L") if req.mask else None
    control = read_input(studio, req.control_image, "control_image").convert("RGB") if req.control_image else None
    if init is not None and mask is not None and mask.size != init.size:
        raise errors.InvalidInput(
            f"the mask is {mask.width}x{mask.height} but the input image is {init.width}x{init.height}; "
            "draw the mask on the same image (same size)",
            field="mask",
        )
    source = init if init is not None else control
    assert source is not None
    fitted = default_size(source.size)
    width, height = req.width or fitted[0], req.height or fitted[1]
    check_canvas(req, width, height)
    outpaint = _outpaint(studio, req) if req.mode == "outpaint" else None
    output = (width, height)
    if outpaint is not None:
        output = (width + outpaint["left"] + outpaint["right"], height + outpaint["top"] + outpaint["bottom"])
    controlnet = resolve_request_controlnet(studio, req.controlnet) if req.controlnet else None
    parent_id = _lineage(studio, source)
    return ModeInputs(
        width=width, height=height, output_size=output,
        job_fields=_job_fields(req, init, mask, control, outpaint, controlnet),
        recipe=_recipe_fields(req, output, outpaint, controlnet, parent_id),
        parent_id=parent_id,
        source_type=COMPOSITE if req.mode in ("inpaint", "outpaint") and parent_id is None else TRAINED,
        blobs=input_blobs(req),
    )  # fmt: skip


def input_blobs(req: GenerateRequest) -> dict[str, str]:
    """The request's input blobs by role (what ``storage.GenerationInput`` records)."""
    roles = (("init_image", req.init_image), ("mask", req.mask), ("control_image", req.control_image))
    return {role: sha for role, sha in roles if sha}


def _outpaint(studio: Studio, req: GenerateRequest) -> dict[str, Any]:
    color = req.outpaint_color
    if color is None:
        color = studio.get_kit(req.kit_id).background_color if req.kit_id is not None else "#FFFFFF"
    return {"left": req.outpaint_left, "right": req.outpaint_right, "top": req.outpaint_top,
            "bottom": req.outpaint_bottom, "fill": req.outpaint_fill, "color": color.upper(),
            "overlap": req.outpaint_overlap}  # fmt: skip


def resolve_request_controlnet(studio: Studio, ref: str) -> ResolvedControlNet:
    from studio.controlnets import resolve_controlnet

    settings = studio.settings
    try:
        return resolve_controlnet(ref, search_dirs=[*settings.models_dirs, settings.models_dir],
                                  models_dir=settings.models_dir, offline=settings.hub_offline())  # fmt: skip
    except errors.ModelError as exc:
        raise errors.ModelError(exc.message, field="controlnet") from exc


def _lineage(studio: Studio, image: Image) -> int | None:
    from studio.generation.engine import pixel_sha256

    with studio.db.session() as s:
        parent = storage.GenerationRepo(s).find_by_pixels(pixel_sha256(image.convert("RGB")))
        return parent.id if parent is not None else None


def _job_fields(req: GenerateRequest, init: Image | None, mask: Image | None, control: Image | None,
                outpaint: dict[str, Any] | None, controlnet: ResolvedControlNet | None) -> dict[str, Any]:  # fmt: skip
    from studio.generation.modes import ControlNetSpec, OutpaintSpec

    fields: dict[str, Any] = {"mode": req.mode, "init_image": init, "mask": mask, "control_image": control,
                              "mask_blur": req.mask_blur}  # fmt: skip
    strength = resolved_strength(req)
    if strength is not None:
        fields["strength"] = strength
    if outpaint is not None:
        rgb = tuple(int(outpaint["color"][i : i + 2], 16) for i in (1, 3, 5))
        fields["outpaint"] = OutpaintSpec(left=outpaint["left"], right=outpaint["right"], top=outpaint["top"],
                                          bottom=outpaint["bottom"], fill=outpaint["fill"], color=rgb,  # type: ignore[arg-type]
                                          overlap=outpaint["overlap"])  # fmt: skip
    if controlnet is not None:
        fields["controlnet"] = ControlNetSpec(key=controlnet.sha256, path=controlnet.path,
                                              conditioning_scale=req.controlnet_conditioning_scale,
                                              low_threshold=req.canny_low_threshold,
                                              high_threshold=req.canny_high_threshold)  # fmt: skip
    return fields


def _recipe_fields(req: GenerateRequest, output: tuple[int, int], outpaint: dict[str, Any] | None,
                   controlnet: ResolvedControlNet | None, parent_id: int | None) -> dict[str, Any]:  # fmt: skip
    from studio.generation.mode_recipe import mode_recipe_fields

    unit = None
    if controlnet is not None:
        unit = {"ref": controlnet.ref, "name": controlnet.name, "sha256": controlnet.sha256,
                "short_hash": controlnet.short_hash, "module": "canny",
                "conditioning_scale": req.controlnet_conditioning_scale,
                "low_threshold": req.canny_low_threshold, "high_threshold": req.canny_high_threshold}  # fmt: skip
    return mode_recipe_fields(
        mode=req.mode, output_size=output, strength=resolved_strength(req),
        mask_blur=req.mask_blur if req.mode in ("inpaint", "outpaint") else 0,
        init_image_sha256=req.init_image, mask_sha256=req.mask, control_image_sha256=req.control_image,
        outpaint=outpaint, controlnet=unit, parent_generation_id=parent_id,
    )  # fmt: skip


def check_rerender_inputs(studio: Studio, generation_id: int, recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe's mode fields, after checking its ControlNet file is still the one it was made with
    (input images are content-addressed: reading them by hash verifies them)."""
    unit = recipe.get("controlnet")
    if unit:
        resolved = resolve_request_controlnet(studio, unit["ref"])
        if resolved.sha256 != unit["sha256"]:
            raise errors.ModelError(
                f"generation {generation_id} was made with ControlNet {unit['name']} (hash {unit['sha256'][:10]}), "
                f"but {unit['ref']} now holds a file with hash {resolved.sha256[:10]}; restore that file to "
                "re-render exactly",
                field="controlnet",
            )
    return mode_request_fields(recipe)


# ----- use as input -------------------------------------------------------------------------------
def send_to(studio: Studio, generation_id: int, image_index: int, mode: str) -> GenerateRequest:
    """A request prefilled from one of our images (its prompt, kit, LoRAs, settings and seed) that uses the
    image as the input of ``mode``. Inpaint still needs a mask, outpaint its sides, ControlNet a model."""
    from PIL import Image

    if mode not in ("img2img", "inpaint", "outpaint", "controlnet"):
        raise errors.InvalidInput("choose img2img, inpaint, outpaint or controlnet", field="mode")
    with studio.db.session() as s:
        gen = storage.GenerationRepo(s).get(generation_id)
        if gen is None:
            raise errors.NotFound(f"generation {generation_id} does not exist", field="generation_id")
        image = next((i for i in gen.images if i.index == image_index), None)
        if image is None:
            raise errors.NotFound(f"generation {generation_id} has no image {image_index}", field="image_index")
        recipe: dict[str, Any] = dict(gen.recipe)
        blob_sha, seed = image.blob_sha256, image.seed
    data = studio.read_blob(blob_sha)
    sha = upload_input_image(studio, UploadedFile(name=f"generation-{generation_id}-{image_index}.png", data=data))
    with Image.open(BytesIO(data), formats=["PNG"]) as png:
        width, height = default_size(png.size)
    return GenerateRequest.of(
        prompt=recipe["user_prompt"], negative_prompt=recipe.get("user_negative_prompt", ""),
        kit_id=recipe.get("kit_id"), loras=tuple(LoraChoice(lora_id=x["id"], weight=x["weight"]) for x in recipe["loras"]),
        scheduler=recipe["scheduler"], num_inference_steps=recipe["num_inference_steps"],
        guidance_scale=recipe["guidance_scale"], width=width, height=height, seed=seed, mode=mode,
        **({"control_image": sha} if mode == "controlnet" else {"init_image": sha}),
    )  # fmt: skip
