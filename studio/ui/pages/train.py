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

preset = attempt(studio.training_preset)
if preset is None:
    st.stop()
with st.expander(f"Settings (preset: {preset.name})"):
    steps = st.number_input("Steps", min_value=1, max_value=100_000, value=preset.max_train_steps)
    rank = st.number_input("Rank", min_value=1, max_value=256, value=preset.rank)
    lr = st.number_input("Learning rate", min_value=1e-6, max_value=1.0, value=preset.learning_rate, format="%.6f")
    batch = st.number_input("Batch size", min_value=1, max_value=64, value=preset.train_batch_size)
    seed = st.number_input("Seed", min_value=0, max_value=2**32 - 1, value=0)

if st.button("Train LoRA", type="primary", disabled=kit.photo_count == 0):
    job = attempt(lambda: studio.enqueue_training(
        TrainRequest.of(kit_id=kit.id, max_train_steps=int(steps), rank=int(rank), learning_rate=float(lr),
                        train_batch_size=int(batch), seed=int(seed)),
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
    elif job.status == "succeeded":
        lora = next((x for x in studio.list_loras(kit.id) if x.id == job.result.get("lora_id")), None)
        st.success(f"Trained LoRA '{plain(lora.name if lora else '?')}' (job {job.id}, {plain(job.message)}).")
    else:
        st.error(f"Training job {job.id} {job.status}: {plain(job.error or '')}")


if (job_id := st.session_state.get(f"train_job_{kit.id}")) is not None:
    job_progress(job_id)

st.subheader("LoRAs of this kit")
loras = attempt(lambda: studio.list_loras(kit.id)) or []
if not loras:
    st.caption("None yet.")
for lora in loras:
    st.text(f"{lora.name} · rank {lora.rank} · hash {lora.short_hash} · trigger '{lora.trigger_phrase}'")
