"""Checkpoints: an interrupted run resumed from its last checkpoint ends exactly like an uninterrupted
one; half-written or unverified checkpoints are never used or kept; other runs are refused."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open

from training import TrainConfigError, train
from training import checkpoints as ckpt

#: Random crops and flips, 4 images in batches of 3 (a partial batch; epochs end mid-window), 8-bit AdamW.
RUN = {
    "max_train_steps": 12,
    "checkpointing_steps": 4,
    "train_batch_size": 3,
    "center_crop": False,
    "random_flip": True,
}


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_interrupted_run_resumes_to_the_same_lora(small_config, tmp_path: Path) -> None:
    uninterrupted = train(small_config("a", **RUN))
    assert names(tmp_path / "a" / "checkpoints") == ["step-000008", "step-000012"]  # limit 2

    # Stopped after step 5: the LoRA of 5 steps is saved, and a checkpoint of step 5 beside step 4's.
    updates: list = []
    stopped = train(small_config("b", **RUN), progress=updates.append, should_stop=lambda: len(updates) >= 5)
    assert stopped.steps == 5 and stopped.losses == uninterrupted.losses[:5]
    with safe_open(str(stopped.lora_path), framework="pt") as f:
        assert f.metadata()["ss_steps"] == "5"
    root = tmp_path / "b" / "checkpoints"
    assert names(root) == ["step-000004", "step-000005"]
    state = json.loads((root / "step-000005" / "state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (5, 2, 1)  # 2 batches per epoch
    assert state["losses"] == uninterrupted.losses[:5]
    assert {"optimizer.bin", "scheduler.bin", "random_states_0.pkl", "lora.safetensors"} <= set(
        names(root / "step-000004")
    )
    assert "model.safetensors" not in names(root / "step-000004")  # the frozen UNet is not copied

    # From step 4, in another output folder (the folder is not part of the run's identity).
    from_four = train(small_config("c", resume_from=str(root / "step-000004"), **RUN))
    assert from_four.tensor_sha256 == uninterrupted.tensor_sha256
    assert from_four.losses == uninterrupted.losses

    # From the latest (step 5, mid-epoch) in place: steps 6..12 are trained and reported, the
    # history is whole.
    resumed_updates: list = []
    resumed = train(small_config("b", resume_from="latest", **RUN), progress=resumed_updates.append)
    assert [u.step for u in resumed_updates] == list(range(6, 13))
    assert resumed.steps == 12 and resumed.losses == uninterrupted.losses
    assert resumed.tensor_sha256 == uninterrupted.tensor_sha256
    assert names(root) == ["step-000008", "step-000012"]


@pytest.fixture
def checkpointed(small_config):  # -> TrainConfig of a 2-step run with a checkpoint at step 2
    config = small_config("run", max_train_steps=2, checkpointing_steps=2)
    train(config)
    return config


def test_resume_refuses_another_run(small_config, checkpointed, product_dir: Path, tmp_path: Path) -> None:
    import dataclasses

    other_lr = dataclasses.replace(checkpointed, learning_rate=2e-3, resume_from="latest", output_name="x")
    with pytest.raises(TrainConfigError) as info:
        train(other_lr)
    message = info.value.problems["resume_from"]
    assert "learning_rate 0.001 (checkpoint) != 0.002 (now)" in message and "another run" in message

    changed = tmp_path / "changed"
    shutil.copytree(product_dir, changed)
    (changed / "product_1.txt").write_text("photo of another bottle")
    other_data = dataclasses.replace(
        checkpointed, data_dir=str(changed), resume_from="latest", output_name="x"
    )
    with pytest.raises(TrainConfigError, match="images, captions or masks changed"):
        train(other_data)

    with pytest.raises(TrainConfigError, match="no complete checkpoint in") as info:
        train(small_config("empty", resume_from="latest"))
    with pytest.raises(TrainConfigError, match="does not exist"):
        train(small_config("empty", resume_from=str(tmp_path / "nowhere")))
    assert not list(Path(checkpointed.output_dir).glob("x*"))  # refused before training: nothing written
    assert not (tmp_path / "empty").exists()

    with pytest.raises(TrainConfigError, match="beyond max_train_steps 1"):
        train(dataclasses.replace(checkpointed, max_train_steps=1, resume_from="latest"))
    with pytest.raises(TrainConfigError, match="already holds checkpoints of an earlier run"):
        train(checkpointed)  # a fresh start on top of them would mix two runs' checkpoints

    # More steps than before is the same run: it continues.
    longer = train(dataclasses.replace(checkpointed, max_train_steps=3, resume_from="latest"))
    assert longer.steps == 3 and len(longer.losses) == 3


def test_leftovers_of_killed_runs_are_removed_and_never_used(checkpointed, caplog) -> None:
    import dataclasses

    root = Path(checkpointed.output_dir) / "checkpoints"
    (root / ".tmp-step-000004").mkdir()  # killed while writing
    (root / ".tmp-step-000004" / "optimizer.bin").write_bytes(b"half")
    (root / ".trash-step-000001").mkdir()  # killed while deleting
    broken = root / "step-000003"  # under a final name but not verifiable (e.g. copied by hand, partly)
    shutil.copytree(root / "step-000002", broken)
    (broken / "lora.safetensors").write_bytes((broken / "lora.safetensors").read_bytes()[:-16])

    resumed = train(dataclasses.replace(checkpointed, max_train_steps=3, resume_from="latest"))
    assert resumed.steps == 3
    assert "skipping checkpoint that does not verify" in caplog.text and "step-000003" in caplog.text
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_a_failed_save_keeps_the_previous_checkpoint(
    small_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = small_config(max_train_steps=6, checkpointing_steps=2, checkpoints_total_limit=1)
    real_write = ckpt.write_atomic
    calls: list[Path] = []

    def disk_full_on_the_second_state(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(ckpt, "write_atomic", disk_full_on_the_second_state)
    with pytest.raises(OSError, match="No space left"):
        train(config)
    root = tmp_path / "out" / "checkpoints"
    assert names(root) == ["step-000002"]  # the new one failed: the old one stays, no temp folder
    assert ckpt.read_verified(root / "step-000002").step == 2

    # A checkpoint that is written but does not verify is discarded, and rotation does not run.
    monkeypatch.setattr(ckpt, "write_atomic", real_write)
    real_verify = ckpt.read_verified

    def corrupt_step_four(folder: Path) -> ckpt.CheckpointState:
        if folder.name == "step-000004":
            raise ckpt.CheckpointError(f"{folder}: simulated bad read-back")
        return real_verify(folder)

    monkeypatch.setattr(ckpt, "read_verified", corrupt_step_four)
    with pytest.raises(ckpt.CheckpointError, match="simulated"):
        train(small_config("again", max_train_steps=6, checkpointing_steps=2, checkpoints_total_limit=1))
    assert names(tmp_path / "again" / "checkpoints") == ["step-000002"]
    assert not (tmp_path / "again" / "lora.safetensors").exists()


class _Planted:
    """A pickle that runs code when loaded: it would create ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.path,))


@pytest.mark.parametrize("member", ["optimizer.bin", "random_states_0.pkl"])
def test_a_tampered_checkpoint_is_never_unpickled(checkpointed, tmp_path: Path, member: str) -> None:
    """Checkpoints hold accelerate's pickles; they are read with weights_only=True, so a planted
    object is refused instead of run (bad_inputs B: nothing user-supplied is unpickled)."""
    import dataclasses
    import pickle

    marker = tmp_path / "planted-code-ran"
    target = Path(checkpointed.output_dir) / "checkpoints" / "step-000002" / member
    target.write_bytes(pickle.dumps(_Planted(marker)))
    # optimizer.bin: torch refuses the global; random states: accelerate skips them and our hash check refuses
    with pytest.raises(Exception, match="(?i)weights.only|unsupported global|random states were not restored"):
        train(dataclasses.replace(checkpointed, max_train_steps=3, resume_from="latest"))
    assert not marker.exists()
