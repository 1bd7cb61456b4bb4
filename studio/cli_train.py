"""``brand-studio`` training extras: the preflight plan, checkpoint samples, picking a checkpoint, and
exporting a LoRA in diffusers or kohya format. Same facade methods as the Train page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from studio.cli_base import app, err, out, studio_session
from studio.fileio import atomic_write_bytes
from studio.schemas import TrainRequest


@app.command()
def plan(
    kit_id: int,
    steps: Annotated[int | None, typer.Option(help="Default: the preset")] = None,
    rank: Annotated[int | None, typer.Option(help="Default: the preset")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Default: the preset")] = None,
    resolution: Annotated[int | None, typer.Option(help="Default: the preset")] = None,
) -> None:
    """Preflight only: the preset for this kit and device, the peak-memory estimate and any downgrade.
    Exit 2 when the run would not fit."""
    with studio_session() as studio:
        view = studio.training_plan(TrainRequest.of(kit_id=kit_id, max_train_steps=steps, rank=rank,
                                                    train_batch_size=batch_size, resolution=resolution))  # fmt: skip
    p = view.preset
    out.print(f"preset: {p.name} (tier {p.tier})", markup=False)
    out.print(f"  {p.max_train_steps} steps, rank {p.rank}, lr {p.learning_rate:g}, batch {p.train_batch_size} x "
              f"{p.gradient_accumulation_steps} accumulation, {p.resolution} px, precision {p.mixed_precision}, "
              f"gradient checkpointing {'on' if p.gradient_checkpointing else 'off'}, {p.optimizer}", markup=False)  # fmt: skip
    out.print(f"device: {view.device}, {view.budget_mb / 1024:.1f} GB usable; estimate {view.estimate_summary}",
              markup=False)  # fmt: skip
    for change in view.changes:
        out.print(f"  changed: {change}", markup=False)


@app.command()
def samples(
    run_id: int, out_dir: Annotated[Path | None, typer.Option("--out", help="Also write the PNGs here")] = None
) -> None:
    """The validation images of each checkpoint of a training run (same prompts and seeds per step)."""
    with studio_session() as studio:
        rows = studio.list_training_samples(run_id)
        table = Table("step", "seed", "image", "prompt")
        for s in rows:
            name = s.image_sha256[:12]
            if out_dir is not None:
                target = out_dir / f"run{run_id}-step{s.step}-seed{s.seed}.png"
                atomic_write_bytes(target, studio.read_blob(s.image_sha256))
                name = str(target)
            table.add_row(str(s.step), str(s.seed), name, s.prompt[:60])
    out.print(table)
    if not rows:
        err.print("no samples: the run made no checkpoints, or validation_images is 0")


@app.command()
def pick(
    run_id: int,
    step: int,
    name: Annotated[str | None, typer.Option(help="LoRA name; default <final name>-step<STEP>")] = None,
) -> None:
    """Register the LoRA of one sampled checkpoint of a finished run (and its kohya copy)."""
    with studio_session() as studio:
        lora = studio.pick_checkpoint(run_id, step, name)
    out.print(f"LoRA {lora.id} '{lora.name}' from step {step}, hash {lora.short_hash}", markup=False)


@app.command("export-lora")
def export_lora(
    lora_id: int,
    out_path: Annotated[Path, typer.Option("--out", help="File or folder to write")],
    fmt: Annotated[str, typer.Option("--format", help="diffusers (PEFT keys) or kohya (A1111 / ComfyUI)")] = "kohya",
) -> None:
    """Write a LoRA file: kohya format for AUTOMATIC1111 / ComfyUI, diffusers for load_lora_weights."""
    with studio_session() as studio:
        name, data = studio.lora_export(lora_id, fmt)
    target = out_path / name if out_path.is_dir() else out_path
    atomic_write_bytes(target, data)
    out.print(f"wrote {target} ({len(data)} bytes)", markup=False)
