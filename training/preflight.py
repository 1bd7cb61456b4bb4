"""Preflight: estimate a run's peak device memory before loading anything, and fit a run to a budget.

The estimate is built from the model's own configs, not from a table of guesses:

- **Frozen weights**: parameter counts of the UNet, text encoder(s) and VAE, built on PyTorch's
  ``meta`` device (no memory, no weights read), times the bytes of the weight dtype (half under
  mixed precision).
- **LoRA state**: the adapter's parameter count (attached on the meta UNet with the run's targets and
  rank) times float32 weight + gradient + optimizer state (AdamW 8 bytes, AdamW8bit 2, Adafactor ~1).
- **Activations**: one forward pass of the meta UNet at the run's resolution under
  ``saved_tensors_hooks`` counts every tensor autograd keeps for the backward pass (views and frozen
  weights counted once / not at all). Attention is traced as a fused (flash / memory-efficient) kernel
  that keeps q, k, v, the output and the log-sum-exp -- what PyTorch's SDPA keeps on CUDA and CPU --
  never the N x N matrix. With gradient checkpointing, diffusers recomputes every ResNet and
  transformer block in the backward pass: the estimate keeps what is saved outside those blocks, the
  inputs each block keeps for its recomputation, and the largest single block's saved tensors.
  Scaled by the batch size; half size under mixed precision.
- **Caching phase**: with cached latents / text embeddings the VAE and text encoders are on the device
  before the loop (then released): the peak is the larger of that phase and the training phase.
- **Overhead**: the CUDA context and allocator fragmentation (not in ``max_memory_allocated``), a
  fixed allowance plus a share of the total.

``fit_to_budget`` walks a ladder of changes (cache, checkpointing, 8-bit optimizer, mixed precision,
smaller micro-batches with more accumulation, lower resolution down to the family's floor) until the
estimate fits, and says what it changed and why; when nothing fits it raises ``PreflightError`` with
the numbers. ``benchmarks/sd15_memory.py`` records the estimate next to measured peaks.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config import TrainConfig

logger = logging.getLogger(__name__)

MB = 2**20
#: CUDA context + cuBLAS workspaces + allocator slack not visible in max_memory_allocated.
CUDA_OVERHEAD_MB = 600
#: resident size of the Python process with torch + diffusers imported (CPU peaks are process RSS)
CPU_RUNTIME_MB = 600
#: extra share for fragmentation and transient buffers (optimizer step, loss, grad clipping)
SLACK = 0.15
#: lowest resolution the ladder may drop to, per family (below it a LoRA learns the wrong scale)
MIN_RESOLUTION = {"sd1": 384, "sd2": 512, "sdxl": 768}
_OPTIMIZER_STATE_BYTES = {"adamw": 8, "adamw8bit": 2, "adafactor": 1}


class PreflightError(ValueError):
    """The run cannot fit the device memory budget, even after every downgrade."""


@dataclass(frozen=True)
class DeviceMemory:
    """What the run may use: ``kind`` "cuda" or "cpu", the total and the budget in MB."""

    kind: str
    name: str
    total_mb: int
    budget_mb: int
    supports_bf16: bool = False


@dataclass(frozen=True)
class MemoryEstimate:
    weights_mb: float
    lora_state_mb: float
    activations_mb: float
    caching_phase_mb: float
    overhead_mb: float
    peak_mb: float
    family: str

    def summary(self) -> str:
        return (
            f"~{self.peak_mb / 1024:.1f} GB peak (weights {self.weights_mb:.0f} MB, LoRA + optimizer "
            f"{self.lora_state_mb:.0f} MB, activations {self.activations_mb:.0f} MB, overhead "
            f"{self.overhead_mb:.0f} MB)"
        )


@dataclass
class Plan:
    """A config that fits (``config``), its estimate, and the changes made to get there."""

    config: TrainConfig
    estimate: MemoryEstimate
    device: DeviceMemory
    changes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.estimate.peak_mb <= self.device.budget_mb


def detect_device(reserve_fraction: float = 0.05) -> DeviceMemory:
    """The first CUDA device (its total memory less a reserve), else the CPU (available RAM)."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        total = props.total_memory // MB
        return DeviceMemory("cuda", props.name, int(total), int(total * (1 - reserve_fraction)),
                            supports_bf16=bool(torch.cuda.is_bf16_supported()))  # fmt: skip
    total, available = _meminfo()
    return DeviceMemory("cpu", "CPU", total, int(available * (1 - reserve_fraction)), supports_bf16=False)


def _meminfo() -> tuple[int, int]:
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) // 1024
    except (OSError, ValueError, IndexError):
        return 16 * 1024, 8 * 1024
    return values.get("MemTotal", 16 * 1024), values.get("MemAvailable", values.get("MemFree", 8 * 1024))


# -- the estimate ------------------------------------------------------------------------------------


def model_family(model_dir: Path) -> str:
    """The memory family: ``training.family``'s "sdxl", else "sd2" for 1024-wide cross-attention
    (SD 2.x trains at 512-768 px), else "sd1"."""
    from training.family import unet_family

    unet = _read_config(model_dir / "unet")
    if unet_family(unet) == "sdxl":
        return "sdxl"
    return "sd2" if unet.get("cross_attention_dim") == 1024 else "sd1"


def estimate(config: TrainConfig, device_kind: str = "cuda") -> MemoryEstimate:
    """Estimate the peak device memory of training with ``config`` (see the module docstring)."""
    model_dir = Path(config.pretrained_model)
    family = model_family(model_dir)
    half = config.mixed_precision in ("fp16", "bf16")
    weight_bytes = 2 if half else 4
    unet_params, lora_params, act_plain, act_checkpointed = _trace_unet(
        str(model_dir), config.rank, tuple(config.target_modules), config.resolution
    )
    act = act_checkpointed if config.gradient_checkpointing else act_plain
    encoders = _param_count(str(model_dir), "text_encoder") + _param_count(str(model_dir), "text_encoder_2")
    vae = _param_count(str(model_dir), "vae")
    encoders_resident = config.train_text_encoder or not config.cache_text_embeddings
    resident = unet_params + (encoders if encoders_resident else 0) + (0 if config.cache_latents else vae)
    weights_mb = resident * weight_bytes / MB
    per_param = 4 + 4 + _OPTIMIZER_STATE_BYTES.get(config.optimizer, 8)
    if config.train_text_encoder:
        lora_params += _text_lora_params(str(model_dir), config.text_encoder_settings()[1])
        act += _text_activation_bytes(str(model_dir))
    lora_mb = lora_params * per_param / MB
    # prior preservation adds the class batch's loss before the one backward: its activations live too
    batches = config.train_batch_size * (2 if config.class_data_dir else 1)
    act_mb = act * batches * (0.5 if half else 1.0) / MB
    if not config.cache_latents:
        act_mb += _vae_encode_mb(config.resolution, config.train_batch_size, weight_bytes)
    train_phase = weights_mb + lora_mb + act_mb
    caching_phase = 0.0
    if config.cache_latents or config.cache_text_embeddings:
        all_weights = (unet_params + encoders + vae) * weight_bytes / MB
        vae_work = _vae_encode_mb(config.resolution, 1, 4 if family == "sdxl" else weight_bytes)
        caching_phase = all_weights + lora_mb / per_param * 4 + (vae_work if config.cache_latents else 0.0)
    overhead = (CUDA_OVERHEAD_MB if device_kind == "cuda" else CPU_RUNTIME_MB) + SLACK * max(
        train_phase, caching_phase
    )
    peak = max(train_phase, caching_phase) + overhead
    return MemoryEstimate(round(weights_mb, 1), round(lora_mb, 1), round(act_mb, 1), round(caching_phase, 1),
                          round(overhead, 1), round(peak, 1), family)  # fmt: skip


def _vae_encode_mb(resolution: int, batch: int, dtype_bytes: int) -> float:
    """The VAE encoder's working set: a few full-resolution 128/256-channel feature maps at once."""
    return 4 * 128 * resolution * resolution * batch * dtype_bytes / MB


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@functools.lru_cache(maxsize=64)
def _param_count(model_dir: str, name: str) -> int:
    """Parameters of one component, counted from its config on the meta device (0 when absent)."""
    import torch

    cfg = _read_config(Path(model_dir) / name)
    if not cfg:
        return 0
    with torch.device("meta"):
        if name == "vae":
            from diffusers import AutoencoderKL

            module: Any = AutoencoderKL.from_config(cfg)
        else:
            from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

            text_cfg = CLIPTextConfig(**{k: v for k, v in cfg.items() if not k.startswith("_")})
            proj = "CLIPTextModelWithProjection" in (cfg.get("architectures") or [])
            module = (CLIPTextModelWithProjection if proj else CLIPTextModel)(text_cfg)
    return sum(p.numel() for p in module.parameters())


def _text_encoder_configs(model_dir: str) -> list[dict[str, Any]]:
    return [c for c in (_read_config(Path(model_dir) / n) for n in ("text_encoder", "text_encoder_2")) if c]


def _text_lora_params(model_dir: str, rank: int) -> int:
    """LoRA parameters on q/k/v/out of every CLIP layer: ``rank * (in + out)`` per projection."""
    return sum(c.get("num_hidden_layers", 12) * 4 * rank * 2 * c.get("hidden_size", 768)
               for c in _text_encoder_configs(model_dir))  # fmt: skip


def _text_activation_bytes(model_dir: str, tokens: int = 77) -> int:
    """What a trained CLIP encoder keeps per caption: ~16 float32 tensors of (tokens, hidden) per layer
    plus the (heads, tokens, tokens) attention maps (eager CLIP attention)."""
    total = 0
    for c in _text_encoder_configs(model_dir):
        hidden, heads = c.get("hidden_size", 768), c.get("num_attention_heads", 12)
        per_layer = 16 * tokens * hidden + 2 * heads * tokens * tokens
        total += c.get("num_hidden_layers", 12) * per_layer * 4
    return total


@functools.lru_cache(maxsize=64)
def _trace_unet(
    model_dir: str, rank: int, targets: tuple[str, ...], resolution: int
) -> tuple[int, int, int, int]:
    """``(frozen UNet parameters, LoRA parameters, saved-activation bytes at batch 1 in float32 without
    and with gradient checkpointing)``; cached per model folder and settings (the ladder asks often)."""
    import torch
    from diffusers import UNet2DConditionModel

    from training.lora import attach_lora

    cfg = _read_config(Path(model_dir) / "unet")
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(cfg)
        unet.requires_grad_(False)
        attach_lora(unet, rank=rank, alpha=float(rank), target_modules=list(targets))
    lora = sum(p.numel() for p in unet.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in unet.parameters() if not p.requires_grad)
    tracer = _SavedTensorTracer(unet)
    with tracer, torch.device("meta"):
        unet.train()
        _meta_forward(unet, cfg, resolution)
    return frozen, lora, tracer.total(checkpointing=False), tracer.total(checkpointing=True)


def _meta_forward(unet: Any, cfg: dict[str, Any], resolution: int) -> None:
    import torch

    side = resolution // 8
    latents = torch.empty(1, cfg.get("in_channels", 4), side, side)
    cross = cfg.get("cross_attention_dim", 768)
    cross = cross[0] if isinstance(cross, list | tuple) else cross
    context = torch.empty(1, 77, cross)
    kwargs: dict[str, Any] = {}
    if cfg.get("addition_embed_type") == "text_time":
        pooled = cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.empty(1, pooled), "time_ids": torch.empty(1, 6)}
    unet(latents, torch.tensor([500]), context, **kwargs).sample.float().pow(2).mean()


class _FusedAttention:
    """Attention processor for the trace: SDPA's output shape, keeping what a fused kernel keeps."""

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None,
                 *args: Any, **kwargs: Any) -> Any:  # fmt: skip
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        out = _fused_sdpa().apply(q, k, v, attn.heads)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


@functools.cache
def _fused_sdpa() -> Any:
    """An autograd function with SDPA's output that saves q, k, v, the output and the log-sum-exp."""
    import torch

    class FusedSDPA(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, q: Any, k: Any, v: Any, heads: int) -> Any:
            out = torch.empty_like(q)
            ctx.save_for_backward(q, k, v, out, q.new_empty(q.shape[0], heads, q.shape[1]))
            return out

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:  # pragma: no cover - the trace never runs backward
            q, k, v, _, _ = ctx.saved_tensors
            return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v), None

    return FusedSDPA


class _SavedTensorTracer:
    """Counts the bytes autograd saves, attributed to the checkpointable block they were saved in."""

    _UNITS = ("ResnetBlock2D", "BasicTransformerBlock")

    def __init__(self, unet: Any) -> None:
        self.unet = unet
        self.params = {id(p) for p in unet.parameters()}
        self.seen: set[int] = set()
        self.outside = 0
        self.inside: dict[int, int] = {}
        self.unit_inputs = 0
        self.stack: list[int] = []
        self.handles: list[Any] = []
        self.hooks: Any = None

    def __enter__(self) -> _SavedTensorTracer:
        import torch

        self.unet.set_attn_processor(_FusedAttention())
        for module in self.unet.modules():
            if type(module).__name__ in self._UNITS:
                self.handles.append(module.register_forward_pre_hook(self._enter_unit, with_kwargs=True))
                self.handles.append(module.register_forward_hook(self._leave_unit))
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hooks.__exit__(*exc)
        for handle in self.handles:
            handle.remove()

    def _enter_unit(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        import torch

        self.stack.append(id(module))
        first = args[0] if args else kwargs.get("hidden_states", kwargs.get("input_tensor"))
        if isinstance(first, torch.Tensor):
            self.unit_inputs += first.numel() * first.element_size()

    def _leave_unit(self, module: Any, args: Any, output: Any) -> None:
        self.stack.pop()

    def _pack(self, tensor: Any) -> Any:
        base = tensor._base if tensor._base is not None else tensor
        key = id(base)
        if key in self.params or key in self.seen:
            return tensor
        self.seen.add(key)
        size = base.numel() * base.element_size()
        if self.stack:
            unit = self.stack[0]
            self.inside[unit] = self.inside.get(unit, 0) + size
        else:
            self.outside += size
        return tensor

    def total(self, checkpointing: bool) -> int:
        largest = max(self.inside.values(), default=0)
        if not checkpointing:
            return self.outside + sum(self.inside.values()) + largest
        # the recomputed block's saved tensors plus its gradient buffers, live at once in the backward
        return self.outside + self.unit_inputs + 2 * largest


# -- fitting a run to a budget -----------------------------------------------------------------------


def fit_to_budget(config: TrainConfig, device: DeviceMemory) -> Plan:
    """Return a ``Plan`` whose config fits ``device.budget_mb``, downgrading step by step.

    Each change keeps what the marketer asked for where it can (same effective batch through gradient
    accumulation) and is explained in ``plan.changes``. Raises ``PreflightError`` when even the
    smallest settings do not fit.
    """
    current = dataclasses.replace(
        config, target_modules=list(config.target_modules), metadata=dict(config.metadata)
    )
    plan = Plan(current, estimate(current, device.kind), device)
    for step in _LADDER:
        if plan.fits:
            break
        step(plan)
    if not plan.fits:
        raise PreflightError(
            f"this run needs {plan.estimate.summary()} but the {device.name} has {device.budget_mb / 1024:.1f} GB "
            f"usable even after: {'; '.join(plan.changes) or 'no possible change'}. Use a GPU with more memory "
            "or a smaller base model."
        )
    return plan


def _apply(plan: Plan, why: str, **changes: Any) -> None:
    before = plan.estimate.peak_mb
    plan.config = dataclasses.replace(plan.config, **changes)
    plan.estimate = estimate(plan.config, plan.device.kind)
    plan.changes.append(f"{why} (estimate {before / 1024:.1f} -> {plan.estimate.peak_mb / 1024:.1f} GB)")


def _cache(plan: Plan) -> None:
    c = plan.config
    if not (c.cache_latents and c.cache_text_embeddings):
        _apply(plan, "cache latents and text embeddings so the VAE and text encoder leave the device",
               cache_latents=True, cache_text_embeddings=True, center_crop=True)  # fmt: skip


def _checkpointing(plan: Plan) -> None:
    if not plan.config.gradient_checkpointing:
        _apply(plan, "gradient checkpointing on (about 20-30% slower, far less activation memory)",
               gradient_checkpointing=True)  # fmt: skip


def _optimizer(plan: Plan) -> None:
    if plan.config.optimizer == "adamw":
        _apply(plan, "8-bit AdamW instead of AdamW (optimizer state in 8 bits)", optimizer="adamw8bit")


def _precision(plan: Plan) -> None:
    if plan.config.mixed_precision == "no" and plan.device.kind == "cuda":
        mode = "bf16" if plan.device.supports_bf16 else "fp16"
        _apply(plan, f"{mode} mixed precision (frozen weights in half precision; the LoRA stays float32)",
               mixed_precision=mode)  # fmt: skip


def _batch(plan: Plan) -> None:
    while not plan.fits and plan.config.train_batch_size > 1:
        c = plan.config
        batch = c.train_batch_size // 2
        accumulation = c.gradient_accumulation_steps * c.train_batch_size // batch
        _apply(plan, f"batch {c.train_batch_size} -> {batch} with {accumulation} accumulation steps "
               "(same effective batch, slower)", train_batch_size=batch, gradient_accumulation_steps=accumulation)  # fmt: skip


def _resolution(plan: Plan) -> None:
    floor = MIN_RESOLUTION.get(plan.estimate.family, 384)
    while not plan.fits and plan.config.resolution - 64 >= floor:
        resolution = plan.config.resolution - 64
        _apply(plan, f"resolution {plan.config.resolution} -> {resolution} px (less detail in the learned product)",
               resolution=resolution, min_bucket_reso=None, max_bucket_reso=None)  # fmt: skip


_LADDER = (_cache, _checkpointing, _optimizer, _precision, _batch, _resolution)
