"""Checkpoints a run can be resumed from, exactly: ``<output_dir>/checkpoints/step-NNNNNN/``.

A checkpoint folder holds accelerate's ``save_state`` files (optimizer, LR scheduler, the RNG states of
python/numpy/torch/CUDA and accelerate's step counter -- *not* the frozen UNet: a hook removes it),
``lora.safetensors`` (the LoRA so far -- the text encoders' too with ``train_text_encoder`` --, loadable
on its own; for SDXL its header also names the family and the UNet layout, so ``kohya.kohya_from_file``
can convert it) and ``state.json``: the step, the position in the data order (epoch, batches consumed;
with prior preservation also in the class images' own order), the losses so far, a fingerprint of the
settings and of the data folder(s), and hashes to verify the LoRA file and the restored torch RNG state.
The optimizer state covers every trained LoRA (UNet and text encoders: one optimizer).

Crash safety (bad_inputs 34, 35, 41): a checkpoint is written into ``checkpoints/.tmp-step-NNNNNN``,
every file fsynced, then renamed to its final name (atomic on one file system), so a folder under a
final name is always complete. Only after the new one is renamed *and verified* (state.json and the
LoRA re-read, the LoRA's tensor hash compared) are the oldest deleted beyond
``checkpoints_total_limit``; a deletion first renames the folder to ``.trash-...``. A run removes the
``.tmp-*`` / ``.trash-*`` leftovers of killed runs when it starts. A failed save (disk full) removes
its temp folder and raises; older checkpoints are untouched.

Resuming checks the checkpoint belongs to the same run: the same settings (except those in
``RESUME_FREE_FIELDS``, which do not change what is trained), the same data (file contents and
captions, wherever the folder now is; the class images too) and the same number of processes; otherwise it refuses with a
``TrainConfigError`` naming what differs. Files are read with accelerate's loader, which unpickles
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from training.config import TrainConfig, TrainConfigError
from training.dataset import Example, mask_path
from training.family import unet_family
from training.lora import ADAPTER_NAME, UNET_PREFIX, file_sha256, file_tensor_sha256, fsync_dir, write_atomic
from training.metadata import family_metadata
from training.sgm import layout_json
from training.text_encoder import load_text_encoder_lora

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.json"
LORA_FILE = "lora.safetensors"
#: Files accelerate's ``save_state`` writes that a usable checkpoint must have.
ACCELERATE_FILES = ("optimizer.bin", "scheduler.bin", "random_states_0.pkl")
STATE_FORMAT = 1
_NAME_RE = re.compile(r"^step-(\d{6,})$")
_TMP_PREFIX, _TRASH_PREFIX = ".tmp-", ".trash-"
#: Settings that may change between a run and its resumption: where and under which name the
#: results go, how long to train (the LR schedule is constant after warm-up), header text,
#: checkpoint cadence, exports. ``data_dir`` is compared by content instead of by path.
RESUME_FREE_FIELDS = frozenset(
    {"output_dir", "output_name", "data_dir", "max_train_steps", "metadata", "checkpointing_steps",
     "checkpoints_total_limit", "resume_from", "export_kohya", "class_data_dir"}
)  # fmt: skip
#: Settings newer than the first checkpoints: left out of the fingerprint while at their defaults, so
#: a checkpoint written before they existed still belongs to the same run.
OPTIONAL_FIELDS = frozenset(
    {"train_text_encoder", "text_encoder_lr", "text_encoder_rank", "text_encoder_alpha", "class_prompt",
     "num_class_images", "prior_loss_weight"}
)  # fmt: skip


class CheckpointError(RuntimeError):
    """A checkpoint folder is incomplete or does not verify."""


@dataclass(frozen=True)
class CheckpointState:
    """The contents of ``state.json``."""

    step: int
    epoch: int
    batch_in_epoch: int
    losses: list[float]
    config_sha256: str
    settings: dict[str, Any]
    dataset_sha256: str
    num_processes: int
    lora_tensor_sha256: str
    rng_sha256: str
    started_at: float
    format: int = STATE_FORMAT
    class_epoch: int = 0  #: prior preservation: epoch of the next class batch
    class_batch_in_epoch: int = 0  #: class batches of that epoch already consumed


@dataclass(frozen=True)
class RunFingerprint:
    settings: dict[str, Any]
    config_sha256: str
    dataset_sha256: str


def checkpoints_root(config: TrainConfig) -> Path:
    return Path(config.output_dir) / CHECKPOINTS_DIR


def fingerprint(
    config: TrainConfig, examples: list[Example], class_examples: Sequence[Example] = ()
) -> RunFingerprint:
    """What makes two runs the same run: the settings that shape training, and the data's content
    (the class images' too, with prior preservation)."""
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    settings = {
        k: v
        for k, v in config.to_dict().items()
        if k not in RESUME_FREE_FIELDS and not (k in OPTIONAL_FIELDS and v == defaults[k])
    }
    settings["pretrained_model"] = str(Path(config.pretrained_model).resolve())
    config_sha = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    items = []
    for example in examples:
        mask = mask_path(example.image_path)
        items.append([
            example.image_path.name,
            file_sha256(example.image_path),
            example.caption,
            file_sha256(mask) if config.masked_loss and mask.is_file() else None,
        ])  # fmt: skip
    data: Any = items
    if class_examples:
        classes = [[e.image_path.name, file_sha256(e.image_path), e.caption] for e in class_examples]
        data = {"instance": items, "class": classes}
    dataset_sha = hashlib.sha256(json.dumps(data).encode()).hexdigest()
    return RunFingerprint(settings, config_sha, dataset_sha)


def remove_stale(root: Path) -> None:
    """Delete what killed runs left behind: half-written (``.tmp-*``) and half-deleted (``.trash-*``)."""
    if not root.is_dir():
        return
    for path in root.iterdir():
        if path.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
            logger.info("removing the leftover %s of an interrupted run", path)
            shutil.rmtree(path, ignore_errors=True)


def read_verified(folder: Path) -> CheckpointState:
    """Read ``folder``'s state.json and check the folder is complete; raise CheckpointError if not."""
    try:
        data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        state = CheckpointState(**data)
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{folder}: unreadable {STATE_FILE} ({exc})") from exc
    if state.format != STATE_FORMAT:
        raise CheckpointError(f"{folder}: state format {state.format}, this trainer reads {STATE_FORMAT}")
    missing = [name for name in (LORA_FILE, *ACCELERATE_FILES) if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{folder}: missing {', '.join(missing)}")
    if file_tensor_sha256(folder / LORA_FILE) != state.lora_tensor_sha256:
        raise CheckpointError(f"{folder}: {LORA_FILE} does not match the hash in {STATE_FILE}")
    return state


def complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of the folders under a final name, oldest first (not yet verified)."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME_RE.match(p.name))]
    return sorted(found)


def find_resume_point(config: TrainConfig, run: RunFingerprint) -> tuple[Path, CheckpointState] | None:
    """The checkpoint ``config.resume_from`` names, verified and checked to belong to this run.

    Without ``resume_from``, a run that writes checkpoints refuses to start on top of an earlier
    run's checkpoints (they would mix under one folder, and "latest" would find the old ones).
    """
    if config.resume_from is None:
        existing = complete_checkpoints(checkpoints_root(config)) if config.checkpointing_steps else []
        if existing:
            raise TrainConfigError(
                {"resume_from": f"{checkpoints_root(config)} already holds checkpoints of an earlier run "
                                f"(up to {existing[-1][1].name}); continue it with resume_from 'latest' "
                                "(--resume latest), or delete that folder to start over"}
            )  # fmt: skip
        return None
    if config.resume_from == "latest":
        folder, state = _latest(checkpoints_root(config))
    else:
        folder = Path(config.resume_from)
        if not folder.is_dir():
            raise TrainConfigError({"resume_from": f"checkpoint folder {folder} does not exist"})
        try:
            state = read_verified(folder)
        except CheckpointError as exc:
            raise TrainConfigError({"resume_from": f"not a usable checkpoint: {exc}"}) from exc
    _check_same_run(folder, state, run)
    if state.step > config.max_train_steps:
        raise TrainConfigError(
            {"resume_from": f"checkpoint {folder} is at step {state.step}, beyond max_train_steps "
                            f"{config.max_train_steps}; raise max_train_steps or use an earlier checkpoint"}
        )  # fmt: skip
    return folder, state


def _latest(root: Path) -> tuple[Path, CheckpointState]:
    for _, folder in reversed(complete_checkpoints(root)):
        try:
            return folder, read_verified(folder)
        except CheckpointError as exc:
            logger.warning("skipping checkpoint that does not verify: %s", exc)
    raise TrainConfigError(
        {"resume_from": f"no complete checkpoint in {root}; start a new run without resume_from "
                        "(or --resume), or name a checkpoint folder"}
    )  # fmt: skip


def _check_same_run(folder: Path, state: CheckpointState, run: RunFingerprint) -> None:
    problems = []
    if state.config_sha256 != run.config_sha256:
        keys = sorted(set(state.settings) | set(run.settings))
        changed = [
            f"{k} {state.settings.get(k)!r} (checkpoint) != {run.settings.get(k)!r} (now)"
            for k in keys
            if state.settings.get(k) != run.settings.get(k)
        ]
        problems.append("other settings: " + "; ".join(changed or ["(settings format changed)"]))
    if state.dataset_sha256 != run.dataset_sha256:
        problems.append("the data folder's (or class_data_dir's) images, captions or masks changed")
    if problems:
        raise TrainConfigError(
            {"resume_from": f"checkpoint {folder} belongs to another run ({' / '.join(problems)}); "
                            "resume with the same settings and data, or start a new run without resume_from"}
        )  # fmt: skip


class Checkpointer:
    """Saves and restores this run's checkpoints through its Accelerator."""

    def __init__(
        self,
        accelerator: Any,
        unet: Any,
        config: TrainConfig,
        run: RunFingerprint,
        started_at: float,
        text_encoders: Mapping[str, Any] | None = None,
    ) -> None:
        self.accelerator = accelerator
        self.unet = unet  # the bare (unwrapped) UNet carrying the LoRA
        self.text_encoders = dict(text_encoders or {})  # key prefix -> bare text encoder with a LoRA
        self.config = config
        self.run = run
        self.started_at = started_at
        self.root = checkpoints_root(config)
        self.last_step: int | None = None
        accelerator.register_save_state_pre_hook(_drop_model_weights)
        accelerator.register_load_state_pre_hook(self._load_lora_instead_of_model)

    def save(
        self,
        step: int,
        epoch: int,
        batch_in_epoch: int,
        losses: list[float],
        class_position: tuple[int, int] = (0, 0),
    ) -> Path:
        """Write, publish, verify and rotate the checkpoint of ``step`` (every process calls this).

        ``class_position`` is ``(epoch, batches consumed)`` in the class images' order (prior.py).
        """
        accelerator = self.accelerator
        name = f"step-{step:06d}"
        tmp, final = self.root / f"{_TMP_PREFIX}{name}", self.root / name
        if accelerator.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        try:
            accelerator.save_state(str(tmp))
            if accelerator.is_main_process:
                self._write_own_files(tmp, step, (epoch, batch_in_epoch), class_position, losses)
                _publish(tmp, final)
                try:
                    read_verified(final)
                except CheckpointError:
                    _discard(final)
                    raise
                self._rotate(keep=final)
        except BaseException:
            if accelerator.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        accelerator.wait_for_everyone()
        self.last_step = step
        logger.info("checkpoint %s", final)
        return final

    def load(self, folder: Path, state: CheckpointState) -> None:
        """Restore optimizer, scheduler, RNG states, step counter and LoRA weights from ``folder``."""
        import torch

        if state.num_processes != self.accelerator.num_processes:
            raise TrainConfigError(
                {"resume_from": f"checkpoint {folder} was made with {state.num_processes} process(es), "
                                f"this run has {self.accelerator.num_processes}; use the same number"}
            )  # fmt: skip
        self.accelerator.load_state(str(folder))
        if self.accelerator.is_main_process and _rng_sha256(torch.get_rng_state()) != state.rng_sha256:
            raise CheckpointError(f"{folder}: the random states were not restored; cannot resume exactly")
        self.last_step = state.step
        logger.info("resumed from %s at step %d", folder, state.step)

    def _write_own_files(
        self, tmp: Path, step: int, position: tuple[int, int], class_position: tuple[int, int],
        losses: list[float],
    ) -> None:  # fmt: skip
        import torch

        from training.lora import save_lora

        save_lora(self.unet, tmp / LORA_FILE, self._lora_metadata(step), self.text_encoders)
        state = CheckpointState(
            step=step, epoch=position[0], batch_in_epoch=position[1], losses=list(losses),
            class_epoch=class_position[0], class_batch_in_epoch=class_position[1],
            config_sha256=self.run.config_sha256, settings=self.run.settings,
            dataset_sha256=self.run.dataset_sha256, num_processes=self.accelerator.num_processes,
            lora_tensor_sha256=file_tensor_sha256(tmp / LORA_FILE),
            rng_sha256=_rng_sha256(torch.get_rng_state()), started_at=self.started_at,
        )  # fmt: skip
        write_atomic(tmp / STATE_FILE, json.dumps(asdict(state), indent=1).encode())
        _fsync_tree(tmp)

    def _lora_metadata(self, step: int) -> dict[str, str]:
        """Header of a checkpoint's LoRA: the step and name; for SDXL also what ``kohya_from_file``
        needs to name its modules (family and UNet layout)."""
        metadata = {"ss_steps": str(step), "ss_output_name": self.config.output_name}
        if unet_family(self.unet.config) == "sdxl":
            metadata.update(family_metadata("sdxl", layout_json(self.unet.config)))
        return metadata

    def _rotate(self, keep: Path) -> None:
        """Delete the oldest complete checkpoints beyond the limit (never ``keep``)."""
        folders = [p for _, p in complete_checkpoints(self.root) if p != keep]
        excess = len(folders) + 1 - self.config.checkpoints_total_limit
        for folder in folders[: max(0, excess)]:
            _discard(folder)
            logger.info("removed old checkpoint %s", folder.name)

    def _load_lora_instead_of_model(self, models: list[Any], input_dir: str) -> None:
        """Load the LoRA(s) from ``lora.safetensors``; accelerate then loads no model weights."""
        import safetensors.torch
        from peft import set_peft_model_state_dict

        own = {id(self.unet), *(id(m) for m in self.text_encoders.values())}
        models[:] = [m for m in models if id(self.accelerator.unwrap_model(m)) not in own]
        prefix = f"{UNET_PREFIX}."
        tensors = safetensors.torch.load_file(str(Path(input_dir) / LORA_FILE))
        state = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        result: Any = set_peft_model_state_dict(self.unet, state, adapter_name=ADAPTER_NAME)
        missing = [k for k in result.missing_keys if "lora_" in k]
        if result.unexpected_keys or missing:
            raise CheckpointError(
                f"{input_dir}: LoRA does not fit this UNet (unexpected {result.unexpected_keys[:3]}, "
                f"missing {missing[:3]})"
            )
        for name, encoder in self.text_encoders.items():
            try:
                load_text_encoder_lora(encoder, tensors, name)
            except ValueError as exc:
                raise CheckpointError(f"{input_dir}: {exc}") from exc


def _drop_model_weights(models: list[Any], weights: list[Any], output_dir: str) -> None:
    """accelerate would save the whole UNet (GBs); the LoRA is saved separately instead."""
    weights.clear()


def _publish(tmp: Path, final: Path) -> None:
    """Rename the finished ``tmp`` to ``final`` (replacing an older folder of that name) durably."""
    trash = final.with_name(f"{_TRASH_PREFIX}{final.name}")
    if final.exists():
        os.replace(final, trash)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    shutil.rmtree(trash, ignore_errors=True)


def _discard(folder: Path) -> None:
    """Delete a checkpoint folder; renamed away first, so it never lies half-deleted under its name."""
    trash = folder.with_name(f"{_TRASH_PREFIX}{folder.name}")
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as stream:
                os.fsync(stream.fileno())
    fsync_dir(folder)


def _rng_sha256(state: Any) -> str:
    return hashlib.sha256(state.numpy().tobytes()).hexdigest()
