"""Per-patient training of the scene-coordinate network (no Django).

The loss is :func:`registration.engine.training_loss.scene_coord_loss`.

Training keeps a pool of noise-free rendered samples, refreshes a few of them every step
and draws each batch from the pool with freshly simulated appearance. The learning rate
warms up and then decays over the budget, counted in steps or in seconds, whichever runs
out first (:func:`budget_fraction`), so a run stopped by its time limit ends annealed.

The forward pass runs under bfloat16 autocast where that is faster (:func:`native_bf16`:
GPUs and AMX CPUs; on the 2-core AMX CPU a quick-preset step's network
part takes 141 instead of 207 ms, besides 75-145 ms of simulating a sample); the loss,
the weights and the optimiser state stay float32, and inference is float32.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from geometry.camera import Camera
from registration.engine.dataset import (
    AppearanceParams,
    BoneBox,
    Sample,
    SampleGenerator,
    bone_box,
    simulate_appearance,
)
from registration.engine.training_loss import LossParts, scene_coord_loss
from registration.engine.unet import SceneCoordOutput, SceneCoordUNet, normalise_image

WARMUP_FRACTION = 0.1
FINAL_LR_FACTOR = 0.01


def budget_fraction(step: int, steps: int, elapsed_s: float, max_seconds: float) -> float:
    """How far training is through its budget, in [0, 1]: the larger of the step share and
    the time share, so that a run stopped by the clock still finishes its schedule."""
    by_steps = step / max(steps, 1)
    by_time = elapsed_s / max_seconds if max_seconds > 0 else 0.0
    return float(min(1.0, max(by_steps, by_time)))


def learning_rate(fraction: float, max_lr: float) -> float:
    """Linear warm-up over the first ``WARMUP_FRACTION`` of the budget, then a cosine decay
    to ``FINAL_LR_FACTOR * max_lr`` at its end."""
    f = min(max(fraction, 0.0), 1.0)
    if f < WARMUP_FRACTION:
        return max_lr * (0.04 + 0.96 * f / WARMUP_FRACTION)
    t = (f - WARMUP_FRACTION) / (1.0 - WARMUP_FRACTION)
    low = FINAL_LR_FACTOR * max_lr
    return low + 0.5 * (max_lr - low) * (1.0 + math.cos(math.pi * t))


@dataclass(frozen=True)
class Preset:
    name: str
    input_size: int
    base_channels: int
    depth: int
    steps: int
    batch_size: int
    pool_size: int
    refresh_per_step: float  # new simulated images per step (may be fractional)
    samples_per_ray: int
    lr: float
    max_seconds: float
    precision: str = "auto"  # "auto" (bf16 autocast where native), "bf16" or "fp32"


PRESETS: dict[str, Preset] = {
    # 2-core CPU, at most 20 minutes including data generation: 64 px input, so that
    # about 4x more images fit in the budget than at 128 px (on the same 12 held-out shots
    # of the abdomen CT, PnP median 69 mm with the former 128 px / 1500-step preset, 36 mm
    # with this one). As many steps as 18 minutes allow: the schedule anneals over the
    # clock (budget_fraction). pelvis_bone_002, 40 held-out shots, network + PnP best-half
    # mean: 3000 steps 10.3 mm, 6000 steps 5.2 mm (AMD EPYC, 2 cores, 9 steps/s). Half a
    # new sample per step (62 ms each): on a 2-core AVX-512 Xeon without AMX, fp32 and
    # 0.5 refresh gave 6844 steps and best half 7.27 mm on 80 held-out shots, against
    # 4211 steps and 8.22 mm with bf16 and 1.0 refresh. The budget limits it, not the
    # network: trained 100 minutes (bench --train-minutes 100; 43254 steps on a 2-core AMX
    # Xeon) the same preset gives best half 2.75 mm on 80 held-out shots (2.44 with the PnP
    # polish)
    "quick": Preset("quick", 64, 16, 4, 20000, 12, 800, 0.5, 64, 2e-3, 18 * 60),
    "standard": Preset("standard", 192, 24, 5, 12000, 12, 1024, 4, 192, 1e-3, 3 * 3600),
    "full": Preset("full", 256, 32, 5, 40000, 16, 2048, 8, 256, 1e-3, 10 * 3600),
}


def get_preset(name: str, overrides: dict | None = None) -> Preset:
    """A preset by name with ``overrides`` (Preset field -> value, e.g. from
    :func:`webapp.env.training_overrides`: fewer steps or a smaller input in tests and
    demos, a clock budget or a precision). Unknown fields are refused."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    fields = PRESETS[name].__dict__.copy()
    unknown = sorted(set(overrides or {}) - set(fields))
    if unknown:
        raise ValueError(f"unknown training preset field(s): {', '.join(unknown)}")
    return Preset(**{**fields, **(overrides or {})})


def clock_bounded(preset: Preset, minutes: float) -> Preset:
    """``preset`` trained for ``minutes`` of wall-clock time, the clock alone bounding the
    run: the step count is lifted, so the schedule anneals over the time
    (:func:`budget_fraction`)."""
    return replace(preset, max_seconds=60.0 * minutes, steps=10**7)

def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles for bfloat16 (Linux ``/proc/cpuinfo`` flag
    ``amx_bf16``); ``False`` where that cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def native_bf16(device: str) -> bool:
    """Whether bfloat16 autocast makes ``device``'s training step faster: Ampere or newer
    GPUs, and CPUs with AMX through oneDNN. AVX-512-BF16 alone is not enough: on a 2-core
    Xeon with AVX-512-BF16 and no AMX the quick preset's network step took 139 ms in
    bfloat16 against 110 ms in float32 (on a 2-core AMX CPU: 141 against 207 ms)."""
    if str(device).startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported()
                    and cpu_has_amx())
    except (AttributeError, RuntimeError):
        return False


def training_dtype(precision: str, device: str) -> torch.dtype:
    """The autocast dtype of the forward pass for a preset's ``precision``."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    raise ValueError(f"unknown precision {precision!r} (choose auto, bf16 or fp32)")


@dataclass
class TrainResult:
    net: SceneCoordUNet
    meta: dict
    history: list[dict] = field(default_factory=list)
    cancelled: bool = False


def _batch(
    pool: list[Sample],
    idx: np.ndarray,
    rng: np.random.Generator,
    device: str,
    appearance: AppearanceParams,
) -> tuple[torch.Tensor, ...]:
    imgs, coords, masks, valids = [], [], [], []
    for i in idx:
        s = pool[int(i)]
        drr = torch.from_numpy(s.drr)
        img, val = simulate_appearance(drr, torch.from_numpy(s.valid), rng, appearance)
        imgs.append(normalise_image(img[None], val[None])[0])
        valids.append(val)
        coords.append(torch.from_numpy(s.coords))
        masks.append(torch.from_numpy(s.mask) & val)
    return (
        torch.stack(imgs).to(device),
        torch.stack(coords).to(device),
        torch.stack(masks).to(device),
        torch.stack(valids).to(device),
    )


def train_model(
    volume,
    camera: Camera,
    *,
    preset: str | Preset = "quick",
    seed: int = 0,
    device: str = "cpu",
    bone_threshold_hu: float = 200.0,
    progress: Callable[[dict], bool | None] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a network for one CT and one C-arm camera.

    ``progress`` is called with ``{"step", "steps", "loss", "median_error_mm", "seconds",
    "phase"}`` about every 10 steps; returning ``True`` cancels (the partially trained
    network is returned with ``cancelled=True``). Raises
    :class:`registration.engine.dataset.NoBoneError` for a CT without bone.
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    t0 = time.perf_counter()
    c0 = time.process_time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    box = bone_box(volume, bone_threshold_hu)
    gen = SampleGenerator(
        volume,
        camera,
        box,
        p.input_size,
        bone_threshold_hu=bone_threshold_hu,
        samples_per_ray=p.samples_per_ray,
        device=device,
    )
    net, memory_format = _new_network(p, device)
    amp_dtype = training_dtype(p.precision, device)
    opt = torch.optim.AdamW(net.parameters(), lr=p.lr, weight_decay=1e-4)
    appearance = AppearanceParams()
    say = log or (lambda _m: None)

    pool, gen_seconds = _initial_pool(gen, rng, p, progress, t0)
    if pool is None:
        return TrainResult(net.cpu(), {}, [], cancelled=True)
    say(f"simulated {len(pool)} training images in {gen_seconds:.1f} s")

    history: list[dict] = []
    cancelled = False
    ema = None
    step = 0
    net.train()
    for step in range(1, p.steps + 1):
        gen_seconds += _refresh_pool(pool, gen, rng, p)
        lr = learning_rate(
            budget_fraction(step - 1, p.steps, time.perf_counter() - t0, p.max_seconds), p.lr
        )
        idx = rng.choice(len(pool), size=min(p.batch_size, len(pool)), replace=False)
        batch = _batch(pool, idx, rng, device, appearance)
        parts = _optimiser_step(net, opt, lr, batch, memory_format, amp_dtype, device)
        loss = float(parts.total.detach())
        ema = loss if ema is None else 0.95 * ema + 0.05 * loss
        out_of_time = time.perf_counter() - t0 > p.max_seconds
        if step % 10 == 0 or step == 1 or step == p.steps or out_of_time:
            rec = {
                "step": step,
                "loss": loss,
                "loss_ema": ema,
                "median_error_mm": parts.median_error * box.scale,
                "mask_bce": parts.mask_bce,
                "lr": lr,
                "seconds": time.perf_counter() - t0,
            }
            history.append(rec)
            if progress and progress({"phase": "training", "steps": p.steps, **rec}):
                cancelled = True
                break
        if step % 100 == 0:
            say(
                f"step {step}/{p.steps} loss {ema:.3f} median error {parts.median_error * box.scale:.1f} mm"
            )
        if out_of_time:
            say(f"stopping at step {step}: time budget {p.max_seconds:.0f} s reached")
            break
    net.eval()
    training = {
        "steps_done": step,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "simulation_seconds": gen_seconds,
        "pool_size": len(pool),
        "final_loss_ema": ema,
        "final_median_error_mm": history[-1]["median_error_mm"] if history else None,
        "history": history,
        "cancelled": cancelled,
    }
    meta = _model_meta(p, box, camera, bone_threshold_hu, seed, device, amp_dtype, training)
    return TrainResult(net.cpu(), meta, history, cancelled)


def _new_network(p: Preset, device: str) -> tuple[SceneCoordUNet, torch.memory_format]:
    """An untrained network for preset ``p`` on ``device`` and its activation layout."""
    net = SceneCoordUNet(base=p.base_channels, depth=p.depth).to(device)
    # channels-last activations on a CPU: oneDNN's convolutions run faster in that layout
    # (quick preset, batch 12 at 64 px, 2-core AVX2 EPYC: forward 58 -> 42 ms, backward
    # unchanged at about 100 ms); the weights saved are the same numbers
    memory_format = (torch.channels_last if torch.device(device).type == "cpu"
                     else torch.contiguous_format)
    return net.to(memory_format=memory_format), memory_format


def _initial_pool(
    gen: SampleGenerator,
    rng: np.random.Generator,
    p: Preset,
    progress: Callable[[dict], bool | None] | None,
    t0: float,
) -> tuple[list[Sample] | None, float]:
    """``(pool, seconds spent simulating)``: the first samples of the pool, reporting the
    "simulating" phase every 10 samples; pool None when ``progress`` cancelled."""
    pool: list[Sample] = []
    n_init = min(p.pool_size, max(p.batch_size * 4, p.pool_size // 3))
    gen_seconds = 0.0
    for i in range(n_init):
        tg = time.perf_counter()
        pool.append(gen.make(rng))
        gen_seconds += time.perf_counter() - tg
        if progress and i % 10 == 0:
            if progress(
                {
                    "phase": "simulating",
                    "step": 0,
                    "steps": p.steps,
                    "loss": None,
                    "median_error_mm": None,
                    "seconds": time.perf_counter() - t0,
                    "simulated": i + 1,
                    "pool": n_init,
                }
            ):
                return None, gen_seconds
    return pool, gen_seconds


def _refresh_pool(
    pool: list[Sample], gen: SampleGenerator, rng: np.random.Generator, p: Preset
) -> float:
    """Simulate this step's new samples into ``pool`` (grown to ``pool_size`` first, then
    replacing random ones); returns the seconds spent simulating."""
    seconds = 0.0
    n_new = int(p.refresh_per_step) + (rng.random() < p.refresh_per_step % 1)
    for _ in range(n_new):
        tg = time.perf_counter()
        s = gen.make(rng)
        seconds += time.perf_counter() - tg
        if len(pool) < p.pool_size:
            pool.append(s)
        else:
            pool[int(rng.integers(len(pool)))] = s
    return seconds


def _optimiser_step(
    net: SceneCoordUNet,
    opt: torch.optim.Optimizer,
    lr: float,
    batch: tuple[torch.Tensor, ...],
    memory_format: torch.memory_format,
    amp_dtype: torch.dtype,
    device: str,
) -> LossParts:
    """One optimiser step at learning rate ``lr`` on ``batch`` (images, coordinates, masks,
    valid); the forward pass under ``amp_dtype`` autocast, the loss in float32."""
    for group in opt.param_groups:
        group["lr"] = lr
    x, c, m, v = batch
    x = x.contiguous(memory_format=memory_format)
    with torch.autocast(torch.device(device).type, dtype=amp_dtype,
                        enabled=amp_dtype != torch.float32):
        out = net(x)
    out = SceneCoordOutput(out.coords.float(), out.log_scale.float(), out.bone_logit.float())
    parts = scene_coord_loss(out, c, m, v)
    opt.zero_grad(set_to_none=True)
    parts.total.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    opt.step()
    return parts


def _model_meta(
    p: Preset,
    box: BoneBox,
    camera: Camera,
    bone_threshold_hu: float,
    seed: int,
    device: str,
    amp_dtype: torch.dtype,
    training: dict,
) -> dict:
    """The model's metadata: preset, normalisation box, camera, seed, device, precision
    and the ``training`` record."""
    return {
        "preset": p.name,
        "preset_params": p.__dict__.copy(),
        "input_size": p.input_size,
        "normalisation": box.to_json(),
        "camera": camera.to_json(),
        "bone_threshold_hu": bone_threshold_hu,
        "seed": seed,
        "device": str(device),
        "training_precision": str(amp_dtype).removeprefix("torch."),
        "training": training,
    }
