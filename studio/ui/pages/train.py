"""Train: one click trains a LoRA on the selected kit and registers it."""

from __future__ import annotations

import streamlit as st

from studio.schemas import TrainRequest
from studio.ui.state import get_studio
from studio.ui.widgets import attempt, kit_picker, model_banner, plain

studio = get_studio()
st.title("Train a brand LoRA")
model_banner(studio)
kits = attempt(studio.list_kits) or []
if not kits:
    st.info("Create a brand kit with a few photos first (Brand kits page).")
    st.stop()
kit = kit_picker(kits)

preset = attempt(lambda: studio.training_preset(kit.id))
if preset is None:
    st.stop()
with st.expander(f"Settings (preset: {plain(preset.name)})"):
    steps = st.number_input("Steps", min_value=1, max_value=100_000, value=preset.max_train_steps)
    rank = st.number_input("Rank", min_value=1, max_value=256, value=preset.rank)
    lr = st.number_input("Learning rate", min_value=1e-6, max_value=1.0, value=preset.learning_rate, format="%.6f")
    batch = st.number_input("Batch size", min_value=1, max_value=64, value=preset.train_batch_size)
    seed = st.number_input("Seed", min_value=0, max_value=2**32 - 1, value=0)
    flip = st.checkbox("Mirror photos at random (only for products without text)", value=False,
                       disabled=kit.logo_count > 0,
                       help="Doubles the views of each photo. Off for kits with logos: it would mirror them.")  # fmt: skip
    text_encoder = st.checkbox("Also train the text encoder", value=False,
                               help="A stronger trigger word; uses more memory (text embeddings are not cached).")  # fmt: skip
    prior = st.checkbox(f"Keep generic '{plain(kit.class_noun)}' images unchanged (prior preservation)", value=False,
                        help="Generates a few generic class photos once with the base model and learns from "
                             "them too, so prompts without the trigger stay unbranded.")  # fmt: skip
    st.caption(f"Resolution {preset.resolution} px · gradient checkpointing "
               f"{'on' if preset.gradient_checkpointing else 'off'} · precision {preset.mixed_precision} · "
               f"optimizer {preset.optimizer}")  # fmt: skip


@st.fragment
def preflight(request: TrainRequest) -> None:
    """The memory check the worker repeats before starting; computed on demand (it takes a second)."""
    if not st.button("Check memory", key=f"plan_{kit.id}"):
        return
    plan = attempt(lambda: studio.training_plan(request))
    if plan is None:
        return
    st.info(f"{plain(plan.device)}: {plain(plan.estimate_summary)} of {plan.budget_mb / 1024:.1f} GB usable.")
    for change in plan.changes:
        st.caption(f"Changed: {plain(change)}")


if st.button("Train LoRA", type="primary", disabled=kit.photo_count == 0):
    job = attempt(lambda: studio.enqueue_training(
        TrainRequest.of(kit_id=kit.id, max_train_steps=int(steps), rank=int(rank), learning_rate=float(lr),
                        train_batch_size=int(batch), seed=int(seed), flip=bool(flip),
                        train_text_encoder=bool(text_encoder), prior_preservation=bool(prior)),
    ))
    if job is not None:
        st.session_state[f"train_job_{kit.id}"] = job.id
        if studio.ensure_worker():
            st.caption("Started a background worker for training.")


@st.fragment(run_every=1.0)
def job_progress(job_id: int) -> None:
    """Polls the job row: training runs in the worker, so this page can be closed and reopened."""
    job = attempt(lambda: studio.get_job(job_id))
    if job is None:
        return
    if job.status in ("queued", "running"):
        st.progress(job.progress, text=plain(job.message or f"Job {job.id} {job.status}..."))
        if st.button("Cancel training", key=f"cancel_{job.id}"):
            studio.cancel_job(job.id)
        run = next((r for r in studio.list_training_runs(kit.id) if r.job_id == job.id), None)
        samples = studio.list_training_samples(run.id) if run is not None else []
        if samples:  # the newest checkpoint's validation images, as they appear
            newest = max(x.step for x in samples)
            st.caption(f"Samples at step {newest}")
            row = [x for x in samples if x.step == newest]
            for column, sample in zip(st.columns(len(row)), row, strict=True):
                column.image(studio.read_blob(sample.image_sha256), caption=plain(f"seed {sample.seed}"))
    elif job.status == "succeeded":
        lora = next((x for x in studio.list_loras(kit.id) if x.id == job.result.get("lora_id")), None)
        done = (job.message or "").split(" · ")[0]  # "step N/N"; the rest was live progress (ETA, sampling)
        st.success(f"Trained LoRA '{plain(lora.name if lora else '?')}' (job {job.id}, {plain(done)}).")
        if not st.session_state.get(f"train_done_{job.id}"):  # once: the LoRA list and samples below are stale
            st.session_state[f"train_done_{job.id}"] = True
            st.rerun(scope="app")
    else:
        st.error(f"Training job {job.id} {job.status}: {plain(job.error or '')}")


if kit.photo_count:
    preflight(TrainRequest.of(kit_id=kit.id, max_train_steps=int(steps), rank=int(rank), learning_rate=float(lr),
                              train_batch_size=int(batch), seed=int(seed), train_text_encoder=bool(text_encoder),
                              prior_preservation=bool(prior)))  # fmt: skip

if (job_id := st.session_state.get(f"train_job_{kit.id}")) is not None:
    job_progress(job_id)



def pick(run_id: int, step: int) -> None:
    lora = attempt(lambda: studio.pick_checkpoint(run_id, step))
    if lora is not None:
        st.session_state["picked"] = f"Registered '{lora.name}' from step {step}; use it on the Generate page."


def checkpoint_samples(run_id: int) -> None:
    """Validation images by checkpoint: the same prompts and seeds at every step; pick the best by eye."""
    samples = attempt(lambda: studio.list_training_samples(run_id)) or []
    steps = sorted({x.step for x in samples})
    if not steps:
        return
    st.markdown(f"**Samples of run {run_id}** (same prompts and seeds at every checkpoint)")
    for step in steps:
        row = [x for x in samples if x.step == step]
        columns = st.columns(len(row) + 1)
        columns[0].markdown(f"Step **{step}**")
        columns[0].button("Use this checkpoint", key=f"pick_{run_id}_{step}", on_click=pick, args=(run_id, step))
        for column, sample in zip(columns[1:], row, strict=True):
            column.image(studio.read_blob(sample.image_sha256), caption=plain(f"seed {sample.seed}"))


if message := st.session_state.pop("picked", None):
    st.success(plain(message))
runs = attempt(lambda: studio.list_training_runs(kit.id)) or []
for run in runs[:3]:
    if run.status == "succeeded":
        checkpoint_samples(run.id)

st.subheader("LoRAs of this kit")
loras = attempt(lambda: studio.list_loras(kit.id)) or []
if not loras:
    st.caption("None yet.")
for lora in loras:
    origin = f" · from step {lora.step}" if lora.step else ""
    st.text(f"{lora.name} · rank {lora.rank} · hash {lora.short_hash} · trigger '{lora.trigger_phrase}'{origin}")
    left, right = st.columns(2)
    name, data = studio.lora_export(lora.id, "diffusers")
    left.download_button("Download (diffusers / PEFT)", data, file_name=name, key=f"dl_{lora.id}",
                         mime="application/octet-stream")  # fmt: skip
    if lora.kohya_sha256:
        name, data = studio.lora_export(lora.id, "kohya")
        right.download_button("Download for A1111 / ComfyUI (kohya)", data, file_name=name, key=f"dlk_{lora.id}",
                              mime="application/octet-stream")  # fmt: skip
