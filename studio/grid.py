"""X/Y grids ("seed-locked variations"), as AUTOMATIC1111's X/Y/Z plot script makes them.

Every cell is a normal recorded generation of the base request with one or two parameters changed
(the seed stays locked unless an axis is the seed). The labelled sheet is stored as one more
generation row (mode ``grid``): one image, whose recipe is the first cell's plus a ``grid`` section
naming the axes, values and cell generations, and whose A1111 ``parameters`` add ``X Type``, ``X
Values``, ``Y Type`` and ``Y Values`` as A1111 does. Re-rendering the grid row re-renders each
cell from its own recipe and draws the sheet again.

Each cell commits its own row as it finishes (a grid interrupted half-way keeps the finished cells).
No torch at import.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any

import storage
from studio import errors
from studio.grid_schemas import MAX_GRID_CELLS, GridAxis, GridView
from studio.schemas import GenerateRequest, GenerationView
from studio.seed_fields import MAX_SEED
from studio.views import generation_view

if TYPE_CHECKING:
    from PIL.Image import Image

    from studio.api import StepProgressFn, Studio

GRID_SCHEMA = 1


@dataclass(frozen=True)
class AxisSpec:
    label: str  #: A1111's axis name ("X Type" value and cell label)
    field: str  #: the GenerateRequest field it sets ("" for the special axes)
    labelled: bool = True  #: cell label "Label: value" (else the value alone, as A1111's Prompt S/R)


AXES: dict[str, AxisSpec] = {
    "seed": AxisSpec("Seed", "seed"),
    "guidance_scale": AxisSpec("CFG Scale", "guidance_scale"),
    "num_inference_steps": AxisSpec("Steps", "num_inference_steps"),
    "scheduler": AxisSpec("Sampler", "scheduler"),
    "subseed_strength": AxisSpec("Var. strength", "subseed_strength"),
    "lora_weight": AxisSpec("LoRA weight", ""),
    "prompt_sr": AxisSpec("Prompt S/R", "", labelled=False),
}


def generate_grid(
    studio: Studio, req: GenerateRequest, x: GridAxis, y: GridAxis | None, progress: StepProgressFn | None
) -> GridView:
    """1) check the axes and build every cell's request, 2) render the cells, 3) draw and store the sheet."""
    from studio.generation_run import run_generation

    requests = cell_requests(req, x, y)
    total = sum(r.num_inference_steps for row in requests for r in row)
    done = 0
    cells: list[GenerationView] = []
    for row in requests:
        for cell in row:
            step = None if progress is None else _offset(progress, done, total)
            cells.append(run_generation(studio, cell, step, parent_id=None, seeds=None))
            done += cell.num_inference_steps
    values = {"x": axis_values(x, requests[0]), "y": axis_values(y, [row[0] for row in requests]) if y else []}
    gen = record_sheet(studio, x, y, values, cells, parent_id=None)
    return GridView(generation=gen, x=x, y=y, cells=tuple(cells), columns=len(x.values), rows=len(requests))


def cell_requests(req: GenerateRequest, x: GridAxis, y: GridAxis | None) -> list[list[GenerateRequest]]:
    """Every cell's request, row by row; any bad value is refused here, before any rendering."""
    if y is not None and y.param == x.param and (x.param != "prompt_sr" and x.lora_id == y.lora_id):
        raise errors.InvalidInput(f"x and y both vary {x.param}; choose another parameter for y", field="y.param")
    if len(x.values) * (len(y.values) if y else 1) > MAX_GRID_CELLS:
        raise errors.InvalidInput(f"a grid has at most {MAX_GRID_CELLS} cells; use fewer values", field="y.values")
    if req.batch_size != 1 or req.batch_count != 1:
        raise errors.InvalidInput("a grid draws one image per cell; set batch_size and batch_count to 1",
                                  field="batch_size")  # fmt: skip
    base = _lock_seeds(req, x, y)
    ys: list[Any] = list(y.values) if y else [None]
    return [[_apply(_apply(base, x, xv, "x"), y, yv, "y") for xv in x.values] for yv in ys]


def _lock_seeds(req: GenerateRequest, x: GridAxis, y: GridAxis | None) -> GenerateRequest:
    """Random seeds (-1) are drawn once, so every cell shares them."""
    changes: dict[str, Any] = {}
    if req.seed == -1:
        changes["seed"] = secrets.randbelow(MAX_SEED + 1)
    varies_strength = "subseed_strength" in (x.param, y.param if y else None)
    if req.subseed == -1 and (req.subseed_strength or varies_strength):
        changes["subseed"] = secrets.randbelow(MAX_SEED + 1)
    return req.model_copy(update=changes) if changes else req


def _apply(req: GenerateRequest, axis: GridAxis | None, value: Any, name: str) -> GenerateRequest:
    """``req`` with the axis set to ``value``, validated as a request (field: ``x.<field>``)."""
    if axis is None:
        return req
    data = req.model_dump()
    spec = AXES[axis.param]
    if axis.param == "prompt_sr":
        search = str(axis.values[0])
        if search not in req.prompt and search not in req.negative_prompt:
            raise errors.InvalidInput(f"Prompt S/R did not find {search!r} in the prompt or negative prompt",
                                      field=f"{name}.values")  # fmt: skip
        data["prompt"] = req.prompt.replace(search, str(value))
        data["negative_prompt"] = req.negative_prompt.replace(search, str(value))
    elif axis.param == "lora_weight":  # set in place (LoRA order kept), or added last
        loras = [c.model_dump() for c in req.loras]
        for choice in loras:
            choice["weight"] = value if choice["lora_id"] == axis.lora_id else choice["weight"]
        if all(c["lora_id"] != axis.lora_id for c in loras):
            loras.append({"lora_id": axis.lora_id, "weight": value})
        data["loras"] = tuple(loras)
    else:
        data[spec.field] = value
    try:
        return GenerateRequest.of(**data)
    except errors.InvalidInput as exc:
        raise errors.InvalidInput(f"{spec.label} value {value!r}: {exc.message}", field=f"{name}.{exc.field}") from None


def axis_values(axis: GridAxis, cells: list[GenerateRequest]) -> list[Any]:
    """The typed values the axis took along ``cells`` (for labels and the recipe)."""
    if axis.param == "prompt_sr":
        return [str(v) for v in axis.values]
    if axis.param == "lora_weight":
        return [next(c.weight for c in r.loras if c.lora_id == axis.lora_id) for r in cells]
    return [getattr(r, AXES[axis.param].field) for r in cells]


def _offset(progress: StepProgressFn, done: int, total: int) -> StepProgressFn:
    return lambda step, _total: progress(done + step, total)


# ----- the sheet ----------------------------------------------------------------------------------
def record_sheet(
    studio: Studio, x: GridAxis, y: GridAxis | None, values: dict[str, list[Any]], cells: list[GenerationView],
    parent_id: int | None,
) -> GenerationView:
    """Draw the labelled sheet of ``cells`` and record it as the grid's generation row."""
    from studio.generation.engine import pixel_sha256
    from studio.generation.imagefile import encode_png

    images = [_first_image(studio, c) for c in cells]
    sheet = draw_sheet(images, len(x.values), [_label(x, v) for v in values["x"]],
                       [_label(y, v) for v in values["y"]] if y else [])  # fmt: skip
    with studio.db.session() as s:
        first = storage.GenerationRepo(s).get(cells[0].id)
        assert first is not None  # just recorded
        recipe = dict(first.recipe)
    recipe.update(mode="grid", grid=grid_section(x, y, values, cells), warnings=[])
    parameters = grid_parameters(recipe, x, y, values)
    ref = studio.blobs.put_bytes(encode_png(sheet, parameters, recipe))
    head = cells[0]
    with studio.db.session() as s:
        storage.BlobRepo(s).record(ref, "image/png")
        gen = storage.GenerationRepo(s).create(
            kit_id=head.kit_id, parent_id=parent_id, mode="grid", model_ref=head.model_ref, model_hash=head.model_hash,
            prompt=head.prompt, negative_prompt=head.negative_prompt, scheduler=head.scheduler,
            num_inference_steps=head.num_inference_steps, guidance_scale=head.guidance_scale, width=sheet.width,
            height=sheet.height, seed=head.seed, recipe=recipe, loras=[(c.lora_id, c.weight) for c in head.loras],
            images=[{"index": 0, "seed": head.seed, "blob_sha256": ref.sha256, "pixel_sha256": pixel_sha256(sheet),
                     "parameters": parameters}],
        )  # fmt: skip
        return generation_view(gen)


def _label(axis: GridAxis | None, value: Any) -> str:
    if axis is None:
        return ""
    spec = AXES[axis.param]
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{spec.label}: {text}" if spec.labelled else text


def grid_section(x: GridAxis, y: GridAxis | None, values: dict[str, list[Any]], cells: list[GenerationView]) -> dict[str, Any]:
    """The recipe's ``grid`` section: axes, values and the cell generations row by row."""
    columns = len(x.values)
    return {
        "schema": GRID_SCHEMA,
        "x": {"param": x.param, "label": AXES[x.param].label, "values": values["x"], "lora_id": x.lora_id},
        "y": None if y is None else {"param": y.param, "label": AXES[y.param].label, "values": values["y"],
                                     "lora_id": y.lora_id},
        "cells": [[c.id for c in cells[i : i + columns]] for i in range(0, len(cells), columns)],
        "cell_size": [cells[0].width, cells[0].height],
    }  # fmt: skip


def grid_parameters(recipe: dict[str, Any], x: GridAxis, y: GridAxis | None, values: dict[str, list[Any]]) -> str:
    """The first cell's A1111 text plus ``X Type``/``X Values`` (and Y), as A1111's X/Y plot writes."""
    from studio.generation.infotext import build_parameters, parse_parameters
    from studio.generation.recipe import a1111_parameters

    parsed = parse_parameters(a1111_parameters(recipe, recipe["seed"]))
    prompt, negative = parsed.pop("Prompt"), parsed.pop("Negative prompt")
    params: dict[str, object] = {k: v for k, v in parsed.items() if not _derived(k, parsed)}
    for name, axis in (("X", x), ("Y", y)):
        if axis is not None:
            params[f"{name} Type"] = AXES[axis.param].label
            params[f"{name} Values"] = ", ".join(_label_value(v) for v in values[name.lower()])
    version = params.pop("Version", None)
    params["Version"] = version
    return build_parameters(prompt, negative, params)


def _derived(key: str, parsed: dict[str, str]) -> bool:
    """``Size-1``/``Size-2``: added by the parser for ``WxH`` values, not real keys."""
    return key[-2:] in ("-1", "-2") and key[:-2] in parsed


def _label_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _first_image(studio: Studio, cell: GenerationView) -> Image:
    from PIL import Image

    with Image.open(BytesIO(studio.read_blob(cell.images[0].blob_sha256)), formats=["PNG"]) as img:
        return img.convert("RGB")


def draw_sheet(images: list[Image], columns: int, x_labels: list[str], y_labels: list[str]) -> Image:
    """The cells in a grid with their labels above (x) and at the left (y), in PIL's default font."""
    from PIL import Image, ImageDraw, ImageFont

    cell_w, cell_h = images[0].size
    rows = -(-len(images) // columns)
    font = ImageFont.load_default(size=max(10, min(cell_w, cell_h) // 10))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pad = max(4, cell_h // 32)
    top = int(max(measure.textbbox((0, 0), t, font=font)[3] for t in [*x_labels, "Ag"])) + 2 * pad
    left = int(max([measure.textbbox((0, 0), t, font=font)[2] + 2 * pad for t in y_labels], default=0))
    sheet = Image.new("RGB", (left + columns * cell_w, top + rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, img in enumerate(images):
        sheet.paste(img, (left + (i % columns) * cell_w, top + (i // columns) * cell_h))
    for c, text in enumerate(x_labels):
        draw.text((left + c * cell_w + cell_w // 2, top // 2), text, fill="black", font=font, anchor="mm")
    for r, text in enumerate(y_labels):
        draw.text((left // 2, top + r * cell_h + cell_h // 2), text, fill="black", font=font, anchor="mm")
    return sheet


# ----- re-render ----------------------------------------------------------------------------------
def rerender_grid(
    studio: Studio, generation_id: int, recipe: dict[str, Any], progress: StepProgressFn | None
) -> GenerationView:
    """Re-render every cell of a recorded grid from its own recipe and draw the sheet again."""
    from studio.generation_run import rerender

    section = recipe["grid"]
    x = _axis(section["x"])
    y = _axis(section["y"]) if section["y"] else None
    ids = [cid for row in section["cells"] for cid in row]
    cells = [rerender(studio, cid, progress) for cid in ids]
    values = {"x": section["x"]["values"], "y": section["y"]["values"] if section["y"] else []}
    return record_sheet(studio, x, y, values, cells, parent_id=generation_id)


def _axis(data: dict[str, Any]) -> GridAxis:
    return GridAxis.of(param=data["param"], values=tuple(data["values"]), lora_id=data.get("lora_id"))
