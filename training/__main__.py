"""``python -m training --config run.json [--resume latest|FOLDER]``: train one LoRA from a JSON config.

Also runs under ``accelerate launch -m training --config run.json``. Exit status: 0 trained,
2 the config (or its model / data folders, or the checkpoint to resume from) is unusable, 1 the loss
diverged (nothing saved) or a checkpoint / file could not be written, 130 interrupted before saving.
SIGINT/SIGTERM ask the run to stop after the current step; it then saves what it has (and, with
``checkpointing_steps``, a checkpoint to resume from). ``--resume latest`` continues a run killed or
stopped earlier from its newest complete checkpoint (it overrides the config's ``resume_from``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
from types import FrameType

from training.config import TrainConfig, TrainConfigError

logger = logging.getLogger("training")


class _StopFlag:
    """Set by the first SIGINT/SIGTERM; a second one interrupts immediately."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def handle(self, signum: int, frame: FrameType | None) -> None:
        logger.warning("signal %d: stopping after the current step (again to abort)", signum)
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Train a LoRA for an SD-1.x or SDXL model."
    )
    parser.add_argument("--config", required=True, help="path of a JSON TrainConfig")
    parser.add_argument(
        "--resume",
        metavar="latest|FOLDER",
        help="continue from the newest checkpoint in <output_dir>/checkpoints ('latest') or from a "
        "checkpoint folder; the config must be the one the checkpoint was made with",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = TrainConfig.from_json(args.config)
        if args.resume is not None:
            config = dataclasses.replace(config, resume_from=args.resume)
        config.validate()
    except TrainConfigError as exc:
        logger.error("%s", exc)
        return 2

    from training.checkpoints import CheckpointError
    from training.loop import TrainingDivergedError, train

    stop = _StopFlag()
    signal.signal(signal.SIGINT, stop.handle)
    signal.signal(signal.SIGTERM, stop.handle)
    try:
        result = train(config, should_stop=stop)
    except TrainConfigError as exc:
        logger.error("%s", exc)
        return 2
    except (TrainingDivergedError, CheckpointError) as exc:
        logger.error("%s", exc)
        return 1
    except OSError as exc:  # e.g. disk full while writing a checkpoint or the LoRA
        logger.error("could not write: %s", exc)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted; no LoRA was written")
        return 130
    logger.info(
        "saved %s after %d steps (final loss %.4f); sha256 %s, tensor sha256 %s",
        result.lora_path, result.steps, result.final_loss, result.sha256, result.tensor_sha256,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
