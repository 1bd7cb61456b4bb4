"""``brand-studio``: every UI action as a command calling the same facade method.

Errors a user can fix exit with code 2 and a one-line message; nothing prints a stack trace.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.progress import Progress
from rich.table import Table

from studio import cli_campaign, cli_kits, cli_prompt, cli_seeds, cli_train  # noqa: F401  (register the sub-commands)
from studio.api import Studio
from studio.cli_base import app, err, out, studio_session
from studio.cli_modes import infer_mode, mode_fields
from studio.fileio import atomic_write_bytes
from studio.history_schemas import HistoryQuery
from studio.schemas import (
    GenerateRequest,
    GenerationView,
    JobView,
    LoraChoice,
    TrainProgressView,
    TrainRequest,
)
from studio.settings import Settings

T = TypeVar("T")


def _placeholder_note(studio: Studio) -> None:
    if studio.model_info().is_placeholder:
        err.print(
            "note: the built-in model is a placeholder (random weights, draws noise). "
            "Set BRAND_STUDIO_BASE_MODEL to a real model for real images."
        )


@app.command()
def doctor() -> None:
    """Check the install: torch, device, bitsandbytes, model, database, disk. Exit 1 if broken."""
    with studio_session() as studio:
        report = studio.doctor()
    table = Table("check", "ok", "detail")
    for c in report.checks:
        table.add_row(c.name, "yes" if c.ok else "NO", c.detail)
    out.print(table)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def model() -> None:
    """Show the base model in use."""
    with studio_session() as studio:
        info = studio.model_info()
    out.print(f"{info.ref}: {info.name} [{info.kind}, {info.family}, hash {info.short_hash}, {info.default_size}px]")
    if info.is_placeholder:
        out.print("placeholder model: images are coloured noise. Set BRAND_STUDIO_BASE_MODEL for real ones.")
    elif info.is_demo:
        out.print("demo model: simple objects in named colours, e.g. 'a red bottle on a blue background'.")


@app.command()
def train(
    kit_id: int,
    steps: Annotated[int | None, typer.Option(help="Default: the preset for the base model")] = None,
    rank: Annotated[int | None, typer.Option(help="Default: the preset")] = None,
    lr: Annotated[float | None, typer.Option(help="Default: the preset")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Default: the preset")] = None,
    resolution: Annotated[int | None, typer.Option(help="Default: the preset")] = None,
    seed: int = 0,
    name: Annotated[str | None, typer.Option(help="LoRA name; default <kit>-vN")] = None,
    flip: Annotated[bool, typer.Option(help="Mirror photos at random (ignored for kits with logos)")] = False,
    text_encoder: Annotated[bool, typer.Option(help="Also train a text-encoder LoRA")] = False,
    prior: Annotated[bool, typer.Option(help="Prior preservation with generated class images")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the LoRA (else only queue the job for a worker)")] = True,
) -> None:
    """Train a LoRA on a kit's photos and register it. With a worker running, the job runs there and
    this command shows its progress; without one, this command runs the job itself."""
    from studio.worker import worker_alive

    with studio_session() as studio:
        req = TrainRequest.of(kit_id=kit_id, max_train_steps=steps, rank=rank, learning_rate=lr,
                              train_batch_size=batch_size, resolution=resolution, seed=seed, name=name,
                              flip=flip, train_text_encoder=text_encoder, prior_preservation=prior)  # fmt: skip
        if not wait:
            job = studio.enqueue_training(req)
            started = studio.ensure_worker()
            out.print(f"queued job {job.id} ({job.status}); " + ("started a worker" if started else "a worker is running"))
            return
        if worker_alive(studio):
            job = _watch_job(studio, studio.enqueue_training(req).id)
            out.print(f"job {job.id} {job.status}: {job.message or job.error or ''}", markup=False)
            if job.status != "succeeded":
                raise typer.Exit(2)
            return
        total = steps or studio.training_preset(kit_id).max_train_steps
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task("training", total=total)
            run = studio.train_lora(req, lambda p: bar.update(task, completed=p.step, total=p.total_steps,
                                                              description=_train_line(p)))  # fmt: skip
    lora = run.lora
    assert lora is not None  # a succeeded run always has its LoRA
    out.print(f"LoRA {lora.id} '{lora.name}' sha256 {lora.sha256[:12]}: {run.steps} steps, "
              f"loss {run.first_loss:.4f} -> {run.final_loss:.4f}", markup=False)  # fmt: skip


def _train_line(p: TrainProgressView) -> str:
    from studio.train_presets import steps_label

    return f"loss {p.loss:.4f} · {p.steps_per_s:.2f} it/s · ETA {steps_label(p.eta_s)}"


def _watch_job(studio: Studio, job_id: int) -> JobView:
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("training (worker)", total=1.0)
        while (job := studio.get_job(job_id)).status in ("queued", "running"):
            bar.update(task, completed=job.progress, description=job.message or job.status)
            time.sleep(0.5)
    return job


@app.command()
def worker(once: Annotated[bool, typer.Option(help="Run at most one job, then exit")] = False) -> None:
    """Run a background worker: claims queued training jobs, heartbeats, resumes killed ones."""
    import threading

    from studio.worker import run_worker

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with studio_session() as studio:
        done = run_worker(studio, stop=stop, max_jobs=1 if once else None)
    out.print(f"worker stopped after {done} job(s)")


@app.command("loras")
def loras_list(kit: Annotated[int | None, typer.Option(help="Only this kit's LoRAs")] = None) -> None:
    """List registered LoRAs."""
    with studio_session() as studio:
        rows = studio.list_loras(kit)
    table = Table("id", "name", "kit", "rank", "hash", "trigger")
    for x in rows:
        table.add_row(str(x.id), x.name, str(x.kit_id or ""), str(x.rank), x.short_hash, x.trigger_phrase)
    out.print(table)


def _parse_lora(value: str) -> LoraChoice:
    lora_id, _, weight = value.partition(":")
    try:
        return LoraChoice(lora_id=int(lora_id), weight=float(weight) if weight else 1.0)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: use LORA_ID or LORA_ID:WEIGHT, e.g. 3:0.8") from None


@app.command()
def generate(
    prompt: str,
    negative: Annotated[str, typer.Option("--negative", help="Negative prompt")] = "",
    kit: Annotated[int | None, typer.Option(help="Brand kit id: adds its trigger and class noun")] = None,
    lora: Annotated[list[str] | None, typer.Option(help="LORA_ID[:WEIGHT], repeatable")] = None,
    steps: int = 20,
    cfg: Annotated[float, typer.Option(help="Guidance scale (CFG)")] = 7.0,
    scheduler: str = "Euler",
    width: int | None = None,
    height: int | None = None,
    seed: Annotated[int, typer.Option(help="-1 = random (recorded)")] = -1,
    batch_size: int = 1,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Also write the PNGs here")] = None,
    mode: Annotated[str | None, typer.Option(help="txt2img, img2img, inpaint, outpaint or controlnet "
                                             "(default: implied by the inputs given)")] = None,
    init_image: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Input image")] = None,
    mask: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Inpaint mask, white = repaint")] = None,
    strength: Annotated[float | None, typer.Option(help="Denoising strength, 0 < s <= 1")] = None,
    mask_blur: Annotated[int, typer.Option(help="Mask feather in px (0 keeps outside pixels exact)")] = 0,
    outpaint: Annotated[str | None, typer.Option(help="Extend by LEFT,RIGHT,TOP,BOTTOM px (multiples of 8)")] = None,
    control_image: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Image for canny edges")] = None,
    controlnet: Annotated[str | None, typer.Option(help="ControlNet folder, .safetensors file or hub id")] = None,
    control_scale: Annotated[float, typer.Option(help="ControlNet conditioning scale")] = 1.0,
    batch_count: Annotated[int, typer.Option(help="Batches one after another; seeds count on")] = 1,
    subseed: Annotated[int, typer.Option(help="Variation seed (-1 = random, recorded)")] = -1,
    subseed_strength: Annotated[float, typer.Option(help="Variation strength: 0 = seed, 1 = variation seed")] = 0.0,
    seed_resize_from: Annotated[str | None, typer.Option(help="WxH: make the seed's noise at this size")] = None,
    ad_format: Annotated[str | None, typer.Option("--format", help="Ad format key (see `formats`)")] = None,
) -> None:
    """Generate seed-locked images; each is stored with its recipe. With --init-image (img2img), --mask
    (inpaint), --outpaint or --control-image + --controlnet it runs the other generation modes."""
    with studio_session() as studio:
        fields = mode_fields(
            studio, mode=infer_mode(mode, init_image, mask, outpaint, control_image), init_image=init_image,
            mask=mask, strength=strength, mask_blur=mask_blur, outpaint=outpaint, control_image=control_image,
            controlnet=controlnet, control_scale=control_scale,
        )  # fmt: skip
        req = GenerateRequest.of(
            prompt=prompt, negative_prompt=negative, kit_id=kit, loras=tuple(_parse_lora(v) for v in lora or []),
            num_inference_steps=steps, guidance_scale=cfg, scheduler=scheduler, width=width, height=height,
            seed=seed, batch_size=batch_size, **fields,
            **cli_seeds.seed_request_fields(batch_count=batch_count, subseed=subseed, subseed_strength=subseed_strength,
                                            seed_resize_from=seed_resize_from, ad_format=ad_format),
        )  # fmt: skip
        _placeholder_note(studio)
        gen = _with_steps_bar(steps * batch_count, lambda cb: studio.generate(req, cb))
        _report_generation(studio, gen, out_dir)


@app.command()
def rerender(
    generation_id: int, out_dir: Annotated[Path | None, typer.Option("--out", help="Also write the PNGs here")] = None
) -> None:
    """Render a recorded generation again from its recipe (identical pixels on the same machine)."""
    with studio_session() as studio:
        original = studio.get_generation(generation_id)
        gen = _with_steps_bar(original.num_inference_steps, lambda cb: studio.rerender(generation_id, cb))
        _report_generation(studio, gen, out_dir)
        same = [a.pixel_sha256 == b.pixel_sha256 for a, b in zip(original.images, gen.images, strict=True)]
    out.print("identical pixels" if all(same) else "PIXELS DIFFER from the original", markup=False)
    if not all(same):
        raise typer.Exit(1)


@app.command()
def history(
    limit: Annotated[int, typer.Option(help="Generations per page (1-100)")] = 20,
    kit: Annotated[int | None, typer.Option(help="Only this brand kit's")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model reference's (e.g. builtin:tiny)")] = None,
    mode: Annotated[str | None, typer.Option(help="Only this mode (txt2img, ...)")] = None,
    lora: Annotated[int | None, typer.Option(help="Only those that used this LoRA id")] = None,
    search: Annotated[str | None, typer.Option(help="Only prompts containing this text")] = None,
    since: Annotated[str | None, typer.Option(help="Made on/after: a date or ISO time (UTC unless it says)")] = None,
    until: Annotated[str | None, typer.Option(help="Made before an ISO time; a date includes that whole day")] = None,
    cursor: Annotated[str | None, typer.Option(help="Continue after a page: the cursor it printed")] = None,
) -> None:
    """Generations newest first, one page at a time (--cursor with the same filters continues)."""
    with studio_session() as studio:
        query = HistoryQuery.of(kit_id=kit, model_ref=model, mode=mode, lora_id=lora, text=search, cursor=cursor,
                                since=_moment(since, "--since"), until=_moment(until, "--until"), limit=limit)  # fmt: skip
        page, total = studio.history(query), studio.count_history(query)
    table = Table("id", "when (UTC)", "kit", "seed", "size", "images", "prompt")
    for g in page.items:
        table.add_row(str(g.id), g.created_at.strftime("%Y-%m-%d %H:%M"), str(g.kit_id or ""), str(g.seed),
                      f"{g.width}x{g.height}", str(len(g.images)), g.prompt[:60])  # fmt: skip
    out.print(table)
    out.print(f"{len(page.items)} shown, {total} match")
    if page.next_cursor is not None:
        out.print(f"next page: --cursor {page.next_cursor}", markup=False, soft_wrap=True)


def _moment(text: str | None, option: str) -> datetime | None:
    """A CLI date/time: ISO date or time, UTC unless it names an offset; a bare date for --until means
    the end of that day."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use a date (2026-11-01) or ISO time (2026-11-01T09:30)",
                                 param_hint=option) from None  # fmt: skip
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    is_date = len(text.strip()) == 10
    return value + timedelta(days=1) if is_date and option == "--until" else value


def _with_steps_bar(total: int, run: Callable[[Callable[[int, int], None]], T]) -> T:
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("generating", total=total)
        return run(lambda step, _total: bar.update(task, completed=step))


def _report_generation(studio: Studio, gen: GenerationView, out_dir: Path | None) -> None:
    out.print(f"generation {gen.id}: {len(gen.images)} image(s), seed {gen.seed}, {gen.width}x{gen.height}")
    for w in gen.warnings:
        err.print(f"warning: {w}", markup=False)
    for img in gen.images:
        line = f"  image {img.index}: seed {img.seed} file {img.blob_sha256[:12]}"
        if out_dir is not None:
            target = out_dir / f"gen{gen.id}-{img.index}-{img.seed}.png"
            atomic_write_bytes(target, studio.read_blob(img.blob_sha256))
            line += f" -> {target}"
        out.print(line, markup=False)


def main() -> None:
    logging.basicConfig(level=Settings().log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    app()


if __name__ == "__main__":
    main()
