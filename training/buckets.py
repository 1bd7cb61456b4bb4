"""Aspect-ratio buckets (kohya's scheme) and the seeded, resumable order of batches.

Buckets. Every ``(w, h)`` on a grid of ``bucket_reso_steps`` between ``min_bucket_reso`` and
``max_bucket_reso`` whose area is at most ``resolution**2`` and as large as the grid allows (kohya
sd-scripts ``make_bucket_resolutions``), plus the exact ``resolution x resolution`` square. Each image
goes to the bucket whose aspect ratio is nearest to its own, measured as ``|log(ar_bucket / ar_image)|``
(so 2:1 is as far from 1:1 as 1:2 is; ties go to the larger area), and is then resized to cover the
bucket and cropped to it. With ``enable_bucket`` off every image gets the square.

Order. Epoch ``e`` shuffles each bucket's images with ``random.Random(f"{seed}:order:{e}")``, cuts them
into batches of ``train_batch_size`` (a bucket's last batch may be smaller), and shuffles the batches.
A batch therefore never mixes sizes, every image is seen once per epoch, and the order depends only
on (seed, epoch) -- a resumed run recomputes it and skips the batches its checkpoint had consumed.
With several processes each takes every ``num_processes``-th batch (the list wrapped around so all
get the same count).
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.config import TrainConfig

Size = tuple[int, int]


def make_buckets(resolution: int, min_reso: int, max_reso: int, steps: int) -> list[Size]:
    """The bucket sizes ``(width, height)``, sorted."""
    max_area = resolution * resolution
    sizes = {(resolution, resolution)}
    width = min_reso
    while width <= max_reso:
        height = min(max_reso, (max_area // width) // steps * steps)
        if height >= min_reso:
            sizes.add((width, height))
            sizes.add((height, width))
        width += steps
    return sorted(sizes)


def assign_bucket(image_size: Size, buckets: list[Size]) -> Size:
    """The bucket with the aspect ratio nearest to ``image_size``'s (ties: larger area, then order)."""
    log_ratio = math.log(image_size[0] / image_size[1])

    def distance(bucket: Size) -> tuple[float, int]:
        return abs(math.log(bucket[0] / bucket[1]) - log_ratio), -bucket[0] * bucket[1]

    return min(buckets, key=distance)


def training_sizes(config: TrainConfig, image_sizes: list[Size]) -> list[Size]:
    """The training size of each image: its bucket, or the ``resolution`` square without buckets."""
    if not config.enable_bucket:
        return [(config.resolution, config.resolution)] * len(image_sizes)
    buckets = make_buckets(config.resolution, *config.bucket_range(), config.bucket_reso_steps)
    return [assign_bucket(size, buckets) for size in image_sizes]


def bucket_info(image_sizes: list[Size], sizes: list[Size]) -> str:
    """kohya's ``ss_bucket_info`` JSON: images per bucket and the mean aspect-ratio error."""
    counts = Counter(sizes)
    buckets = {
        str(i): {"resolution": list(size), "count": counts[size]} for i, size in enumerate(sorted(counts))
    }
    errors = [abs(b[0] / b[1] - i[0] / i[1]) for i, b in zip(image_sizes, sizes, strict=True)]
    return json.dumps({"buckets": buckets, "mean_img_ar_error": sum(errors) / len(errors)})


@dataclass(frozen=True)
class BatchPlan:
    """Which examples form each batch of each epoch, for one process."""

    sizes: tuple[Size, ...]  #: the training size of each example (its bucket)
    batch_size: int
    seed: int
    num_processes: int = 1
    process_index: int = 0
    stream: str = "order"  #: names the random stream; the class images (prior.py) have their own

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches of ``epoch`` (every process's), each a list of example indices of one size."""
        rng = random.Random(f"{self.seed}:{self.stream}:{epoch}")
        groups: dict[Size, list[int]] = {}
        for index, size in enumerate(self.sizes):
            groups.setdefault(size, []).append(index)
        batches: list[list[int]] = []
        for size in sorted(groups):
            members = groups[size]
            rng.shuffle(members)
            batches += [members[i : i + self.batch_size] for i in range(0, len(members), self.batch_size)]
        rng.shuffle(batches)
        return batches

    def local_batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of ``epoch``; every process gets the same number."""
        batches = self.epoch_batches(epoch)
        per_process = math.ceil(len(batches) / self.num_processes)
        wrapped = [batches[i % len(batches)] for i in range(per_process * self.num_processes)]
        return wrapped[self.process_index :: self.num_processes]
