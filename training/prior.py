"""Prior preservation during training: the class images' own batch order and their loss term.

Each micro-batch of the subject's images is followed, in the same accumulation window and the same
backward pass, by a batch of ``train_batch_size`` class images (class_images.py; fewer at the end of
a bucket, as for the subject's), and the micro-batch's loss is
``instance_loss + prior_loss_weight * class_loss`` -- diffusers' ``train_dreambooth_lora.py`` formula,
computed with a second forward pass instead of one concatenated batch, so the two batches need not
share a bucket size. (Memory: the activations of both forward passes are kept for the backward pass,
about what a doubled batch needs.)

The class images have their own aspect buckets and their own order: ``BatchPlan`` with the stream
"class-order" of the run seed, consumed one batch per micro-batch and wrapping into the next class
epoch independently of the subject's epochs. Their position (epoch, batches consumed) is saved in
every checkpoint. The class loss draws its noise and timesteps from a generator seeded by the run
seed, the process and that position, not from torch's global generator: the subject's batches get
the same draws as without prior preservation (so ``prior_loss_weight`` 0 trains exactly the LoRA
of a run without it), and a resumed run redraws the class batches' noise exactly.

Class latents and caption embeddings are cached like the subject's (and released together).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch

from training.buckets import BatchPlan, training_sizes
from training.caching import TrainInputs
from training.config import TrainConfig
from training.dataset import Example, TrainingImages, upright_size
from training.losses import noise_loss

#: ``BatchPlan.stream`` of the class images' order.
CLASS_STREAM = "class-order"


def class_seed(seed: int) -> int:
    """Seed of the class images' crops, flips and latent samples (distinct from the subject's)."""
    return int(hashlib.sha256(f"{seed}:class-images".encode()).hexdigest()[:8], 16)


@dataclass
class ClassBatches:
    """The class images' inputs, their order for this process, and the position in it."""

    inputs: TrainInputs
    plan: BatchPlan
    seed: int  #: the run seed
    weight: float  #: prior_loss_weight
    num_images: int
    epoch: int = 0  #: epoch of the next class batch
    batch_in_epoch: int = 0  #: class batches of that epoch already consumed
    _batches: tuple[int, list[list[int]]] | None = None

    @property
    def position(self) -> tuple[int, int]:
        return self.epoch, self.batch_in_epoch

    def restore(self, epoch: int, batch_in_epoch: int) -> None:
        self.epoch, self.batch_in_epoch = epoch, batch_in_epoch

    def next_batch(self) -> tuple[int, list[int], int]:
        """``(epoch, example indices, noise seed)`` of the next class batch; advances the position."""
        if self._batches is None or self._batches[0] != self.epoch:
            self._batches = (self.epoch, self.plan.local_batches(self.epoch))
        epoch, batches = self._batches
        index = self.batch_in_epoch
        key = f"{self.seed}:class-noise:{self.plan.process_index}:{epoch}:{index}"
        noise_seed = int(hashlib.sha256(key.encode()).hexdigest()[:15], 16)
        self.batch_in_epoch += 1
        if self.batch_in_epoch == len(batches):
            self.epoch, self.batch_in_epoch = epoch + 1, 0
        return epoch, batches[index], noise_seed

    def loss(
        self, unet: Any, noise_scheduler: Any, *, noise_offset: float, min_snr_gamma: float | None
    ) -> Any:
        """The noise loss of the next class batch (not yet weighted), with its own random draws."""
        epoch, indices, noise_seed = self.next_batch()
        batch = self.inputs.batch(indices, epoch)
        generator = torch.Generator(device=batch.latents.device).manual_seed(noise_seed)
        return noise_loss(
            unet, noise_scheduler, batch.latents, batch.encoder_hidden_states,
            mask=batch.mask, noise_offset=noise_offset, min_snr_gamma=min_snr_gamma,
            pooled_embeds=batch.pooled_embeds, time_ids=batch.time_ids, generator=generator,
        )  # fmt: skip


def make_class_batches(
    config: TrainConfig, class_examples: list[Example], accelerator: Any, parts: Any, dtype: torch.dtype,
    *, cache_text: bool,
) -> ClassBatches | None:  # fmt: skip
    """The class images' inputs and order (None without class images).

    Their latents / caption embeddings are cached as the subject's are, but the models are kept: the
    subject's caching runs next and releases them.
    """
    if not class_examples:
        return None
    sizes = training_sizes(config, [upright_size(e.image_path) for e in class_examples])
    images = TrainingImages(
        class_examples, sizes, seed=class_seed(config.seed), center_crop=config.center_crop,
        random_flip=config.random_flip,
    )  # fmt: skip
    inputs = TrainInputs(images, parts, accelerator.device, dtype)
    inputs.build_caches(latents=config.cache_latents and images.deterministic, text=cache_text, release=False)
    plan = BatchPlan(
        tuple(sizes), config.train_batch_size, config.seed, num_processes=accelerator.num_processes,
        process_index=accelerator.process_index, stream=CLASS_STREAM,
    )  # fmt: skip
    return ClassBatches(inputs, plan, config.seed, config.prior_loss_weight, len(class_examples))
