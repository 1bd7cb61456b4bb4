"""``python -m benchmarks [name ...]``: run the benchmarks, one JSON line each, on stdout."""

from __future__ import annotations

import argparse
import json
import logging
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks import demo_model, generation, history, lora_switch, sd15_memory, training  # noqa: E402

BENCHMARKS = {"generation_overhead": generation.run, "training_vs_plain_loop": training.run,
              "sd15_step_memory": sd15_memory.run, "history_query_100k": history.run,
              "lora_switch_vs_reload": lora_switch.run, "demo_quality": demo_model.run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="default: all")
    parser.add_argument("--runs", type=int, default=9, help="timed runs per side (median reported)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in args.names or list(BENCHMARKS):
        print(json.dumps({"benchmark": name, **BENCHMARKS[name](runs=args.runs)}), flush=True)


if __name__ == "__main__":
    main()
