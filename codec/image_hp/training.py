"""Training of the image-hp model on a folder of photos (tools/train_image.py is its command line).

The checkpoint (model, its moving average, optimizer, step) is written atomically every save_every
steps and when Ctrl-C or SIGTERM stops the run, so an interrupted run continues where it stopped.
Without a checkpoint, training starts from shipped weights (starting_weights): sessions do not keep
machines, and the shipped file is the weights-only checkpoint that carries training across them.
Each sample of a batch draws its own rate level; the loss is bits/pixel + lambda * 255^2 * MSE (x in
[0, 1]), each sample's divided by its level's running mean (balance_levels). Four training photos
are held out for validation (logged RD) of two averages of the weights (EMA_DECAY, SLOW_EMA_DECAY);
the average with the lowest validation loss is kept in <checkpoint>-best.pt (a run that starts
from shipped weights validates them first: the best must beat them). Export writes the average
under a model id that is not released (registry.export refuses released ones).

Phases: soft (the default: rates of noisy latents, everything learns), then optionally
entropy (only the hyperprior and context model learn, on the rate alone) and hard (the
decoder side and entropy models learn on the rate of the rounded latents). Each new phase
starts from the average weights with a fresh optimizer.

Under torchrun (`torchrun --nproc_per_node N tools/train_image.py ...`) each of the N processes
trains a DistributedDataParallel copy (gloo on CPU, NCCL on CUDA: process i on cuda:<local rank>):
--batch and --accumulate are per process, so a step's batch is N times --batch; each process draws
its own crops and noise (seeds offset by its rank), the level balance uses the running means of the
whole step's batch, logged losses are means over processes, and process 0 alone validates, logs,
saves and exports. A checkpoint holds the bare model's weights, so a run of any number of processes
resumes it (every process loads it: on several machines, from a file system they share). One process (no torchrun, or N = 1) runs exactly as without torchrun.

Measurements behind the defaults and the experiments tried and dropped: docs/RECORD.md.
"""

import contextlib
import copy
from dataclasses import dataclass, replace
import math
import os
from pathlib import Path
import random
import re
import signal
import time
import warnings

import numpy as np
from PIL import Image
import torch
import torch.distributed as dist

from .. import registry
from . import FAMILY
from .model import (FAST_PARAMETERS, ImageModel, ImageModelConfig, frozen_tensors, model_from_frozen, rd_cost,
                    with_channel_groups, with_lambdas)

HOLDOUT = 4  # the last photos of the data folder, by name, validate and are never trained on
FAST_LR_SCALE = 10.0  # learning-rate multiplier of FAST_PARAMETERS (gains, z scale positions, post-filter)
# What --hard freezes: everything that decides the latents (the encoder side).
ENCODER_SIDE = ("g_a", "h_a", "log_gain", "log_hyper_gain")
# What --entropy trains: the hyperprior and the context model, everything that shapes the rate of
# given latents y.
ENTROPY_MODELS = ("h_a", "h_s", "context", "log_hyper_gain", "log_hyper_inv_gain", "z_scale_t")


def load_images(files, scales=(1.0, 0.75, 0.5)):
    """Each photo at a few scales (rescale augmentation: Kodak-like detail density)."""
    out = []
    for f in files:
        im = Image.open(f).convert("RGB")
        for s in scales:
            size = (round(im.width * s), round(im.height * s))
            arr = np.asarray(im.resize(size, Image.LANCZOS) if s != 1.0 else im)
            out.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
    return out


def large_enough(images, crop):
    """The images that a crop x crop square fits in (the smallest photos at scale 0.5 are 268
    pixels high); exits when there are none."""
    fitting = [im for im in images if min(im.shape[1:]) >= crop]
    if not fitting:
        raise SystemExit(f"no training image is {crop} pixels wide and high: lower --crop")
    return fitting


def random_batch(images, batch, crop, rng):
    """`batch` random crop x crop squares (randomly mirrored) of the images (see large_enough)."""
    crops = []
    for _ in range(batch):
        im = images[rng.randrange(len(images))]
        _, h, w = im.shape
        y, x = rng.randrange(h - crop + 1), rng.randrange(w - crop + 1)
        c = im[:, y:y + crop, x:x + crop]
        if rng.random() < 0.5:
            c = c.flip(2)
        crops.append(c)
    return torch.stack(crops).float() / 255


def batch_parts(levels: int, batch: int, crop: int, low_levels: int, low_crop: int) -> list[tuple[int, int, range]]:
    """(crop size, number of crops, rate levels) of each part of a step's batch: `batch` crops of
    `crop`^2 for all levels, or, with `low_levels`, one crop of `low_crop`^2 for each of the
    `low_levels` lowest levels and the `batch` crops for the rest.

    Why split: small crops favour the high levels, large ones the low levels, which lean on the
    hyperprior, whose view of a 192^2 crop is 3x3 positions, mostly border (docs/RECORD.md)."""
    if not low_levels:
        return [(crop, batch, range(levels))]
    return [(low_crop, low_levels, range(low_levels)), (crop, batch, range(low_levels, levels))]


def stratified_levels(levels: range, count: int) -> torch.Tensor:
    """`count` rate levels from `levels`, as evenly as the count allows (each level
    count // len(levels) times, a random few once more): the mix of loss scales (lambda spans
    ~750x) varies less from batch to batch than with independent draws."""
    n = len(levels)
    drawn = torch.cat([torch.arange(n).repeat(count // n), torch.randperm(n)[:count % n]])
    return levels.start + drawn[torch.randperm(count)]


def adapt_threads(cores: int, processes: int = 1) -> None:
    """Use one thread fewer while other processes load the machine (`processes`: the training
    processes on this machine, `cores` each, which are not others).

    OpenMP threads wait for each other at every parallel region, so with another busy process
    sharing a core, two threads run slower than one.
    """
    others = os.getloadavg()[0] - torch.get_num_threads() * processes
    torch.set_num_threads(max(1, cores - 1) if others > 0.7 else cores)


def load_checkpoint_weights(model, weights) -> list[str]:
    """Load a checkpoint's weights; parts of the model the checkpoint predates (a module added
    since, e.g. the context network) keep their initialisation, which must leave the model's
    function unchanged. Returns the names of those new parameters (the optimizer restarts)."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected:
        raise SystemExit(f"checkpoint has weights this model lacks: {unexpected[:3]}")
    if missing:
        print(f"checkpoint predates {sorted({k.split('.')[0] for k in missing})}: initialised, "
              f"optimizer restarted", flush=True)
    return missing


def resume_average(model: ImageModel, state: dict | None, key: str = "ema") -> ImageModel:
    """The weight average that validation and export use: the checkpoint `state`'s, going on, or
    (state None: a new model, or one restructured by a new phase, rate levels or channel groups)
    a copy of the model. Parameters the checkpoint predates take the model's initial values,
    which leave its function unchanged: restarting the average for a new module alone dipped
    validation for ~500 steps."""
    average = copy.deepcopy(model)
    if state and key in state:
        average.load_state_dict(state[key], strict=False)
    return average


WARMUP_STEPS = 200
# Untimed steps before a --bench measurement: the first steps compile (--compile) and warm caches.
BENCH_WARMUP = 5
# Validation and export use an exponential moving average of the weights (Polyak averaging):
# it smooths the step-to-step noise of small batches drawn at many rates. ~500-step horizon.
EMA_DECAY = 0.998
# A slower average (~2,000-step horizon), validated beside it (`validate slow step` lines); the
# best of either is kept. Where a constant learning rate leaves the iterates drifting, the
# longer average is steadier (docs/RECORD.md).
SLOW_EMA_DECAY = 0.9995
# Horizon of the per-level running mean of the loss (see balance_levels), in observations.
LEVEL_LOSS_DECAY = 0.99


def balance_levels(per_sample: torch.Tensor, level: torch.Tensor, level_loss: torch.Tensor,
                   reduce=None) -> torch.Tensor:
    """The batch loss with each sample's loss divided by its rate level's running mean.

    The top level's loss is ~35x the bottom's, so a plain mean lets the high rates steer the
    shared transforms. Dividing by the level's mean makes the gradient that of the mean over
    levels of log(loss): every level's relative improvement counts the same, as in a BD-rate.
    Updates `level_loss` (NaN: level not seen yet) in place; the result keeps the plain mean's
    magnitude, so gradient clipping acts as before. `reduce` (distributed training: Ranks.sum)
    sums the per-level counts and totals over the processes in place, so that every process keeps
    the same means, those of the whole step's batch.
    """
    with torch.no_grad():
        count = torch.zeros_like(level_loss).index_add_(0, level, torch.ones_like(per_sample))
        total = torch.zeros_like(level_loss).index_add_(0, level, per_sample.detach())
        if reduce:
            stats = torch.stack([count, total])
            reduce(stats)
            count, total = stats
        seen = count > 0
        batch_mean = total[seen] / count[seen]
        old = level_loss[seen]
        level_loss[seen] = torch.where(old.isnan(), batch_mean, old.lerp(batch_mean, 1 - LEVEL_LOSS_DECAY))
        known = level_loss[~level_loss.isnan()]
        weight = known.mean() / level_loss[level]
    return torch.mean(weight * per_sample)


@torch.no_grad()
def update_average(average: ImageModel, model: ImageModel, decay: float) -> None:
    for a, p in zip(average.parameters(), model.parameters()):
        a.lerp_(p, 1 - decay)


def freeze_encoder_side(model: ImageModel) -> None:
    """Set up --hard training: the encoder side (ENCODER_SIDE) frozen, so the latents stay as
    the soft (noisy-rate) training made them, and the model in eval mode, whose forward charges
    the rate of the rounded latents; the decoder side and the entropy models then learn what
    the coder actually pays (Guo et al. 2021, "Soft then hard")."""
    model.eval()
    for name, param in model.named_parameters():
        param.requires_grad_(name.split(".")[0] not in ENCODER_SIDE)


def train_only_entropy_models(model: ImageModel) -> None:
    """Set up --entropy training: only ENTROPY_MODELS learn, on the rate alone; the transforms
    and the latent gains stay, so the latents y and their reconstruction do not change (up to
    the means' share in rounding) and no synthesis runs. A step then costs a fraction of a full
    one and affords larger batches; at the end of a soft run it gains far more per step than
    joint training (docs/RECORD.md)."""
    for name, param in model.named_parameters():
        param.requires_grad_(name.split(".")[0] in ENTROPY_MODELS)


def lr_at(step, base, first, total, fresh=False):
    """Constant, then a cosine decay over the last 20 % of this run's steps (`first` to `total`:
    a later phase, resumed at a high step count, gets its own plan). A fresh optimizer (no saved
    moments: a new model, or one with new parts) ramps up linearly over WARMUP_STEPS from
    `first`, so its first, full-size Adam steps do not jolt trained weights."""
    if fresh and step < first + WARMUP_STEPS:
        return base * (step - first + 1) / WARMUP_STEPS
    start = first + int(0.8 * (total - first))
    if step < start:
        return base
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - start) / max(1, total - start))))


@torch.no_grad()
def validate(model, images, device):
    """Mean bpp and PSNR per level on held-out photos (center 512x512 crops; the rate of the
    rounded latents, as coded), and the geometric mean over levels of each level's mean
    training loss (bpp + lambda * 255^2 * MSE): the objective balance_levels trains for, where
    each level's relative gain counts."""
    model.eval()
    rows, log_losses = [], []
    for level in range(model.cfg.levels):
        bpp, psnr, losses = [], [], []
        for im in images:
            _, h, w = im.shape
            s = min(512, h, w) // 64 * 64
            x = im[None, :, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s].float().to(device) / 255
            out = model(x.contiguous(memory_format=torch.channels_last), torch.tensor([level], device=device))
            bpp.append(((out["bits_y"] + out["bits_z"]) / (s * s)).item())
            mse = torch.mean((out["x_hat"].clamp(0, 1) - x) ** 2).item()
            psnr.append(10 * math.log10(1 / mse))
            losses.append(rd_cost(bpp[-1], mse, model.cfg.lambdas[level]))
        rows.append((np.mean(bpp), np.mean(psnr)))
        log_losses.append(math.log(np.mean(losses)))
    model.train()
    return rows, math.exp(np.mean(log_losses))


def log_validation(model, images, device, step: int, label: str = "validate") -> float:
    """Validate (see validate), print the `validate step N:` line tools/validation_bd.py reads,
    and return the loss."""
    rows, val_loss = validate(model, images, device)
    print(f"{label} step {step}: loss {val_loss:.4f} "
          + " ".join(f"{b:.3f}bpp/{q:.2f}dB" for b, q in rows), flush=True)
    return val_loss


def save_checkpoint(path: Path, cfg, model, step: int, **extra) -> None:
    """Atomic write: an interrupted save leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"config": cfg.to_json(), "model": model.state_dict(), "step": step, **extra}, tmp)
    os.replace(tmp, path)


def stop_on_signals() -> list[int]:
    """A list that SIGINT and SIGTERM (Ctrl-C, `timeout`) append to, for the training loop to save
    a checkpoint after the step in progress and exit, keeping the steps since the last save; a
    second signal stops at once."""
    stop = []

    def request(signum, frame):
        if stop:
            raise KeyboardInterrupt
        print(f"signal {signum}: saving a checkpoint after this step", flush=True)
        stop.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request)
    return stop


def draw_batch(parts, train_images, rng, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One batch: (crops, their rate levels) for each part of batch_parts."""
    return [(random_batch(train_images[crop], count, crop, rng).to(device, memory_format=torch.channels_last),
             stratified_levels(levels, count).to(device)) for crop, count, levels in parts]


class BatchLoss(torch.nn.Module):
    """Per-sample training losses and bits per pixel of one batch (see draw_batch), all its parts
    in one forward: the module DistributedDataParallel wraps, which averages over the processes
    the gradients of what its forward computed."""

    def __init__(self, model: ImageModel, lambdas: torch.Tensor, phase: str, dtype):
        super().__init__()
        self.model, self.lambdas, self.phase, self.dtype = model, lambdas, phase, dtype

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(map(torch.cat, zip(*(sample_losses(self.model, x, level, self.lambdas, self.phase, self.dtype)
                                          for x, level in batch))))


def backward_batches(losses, batches, level_loss, reduce=None) -> list[tuple[float, float]]:
    """Backpropagate the level-balanced loss (balance_levels, with `reduce`) of each of `batches`
    (see draw_batch; `losses`: a BatchLoss, or its DistributedDataParallel), scaled by
    1 / len(batches), so the gradients add up to their mean: one batch len(batches) times as
    large, in the memory of one (--accumulate); the processes of a distributed run exchange the
    sum once, in the last backward. Returns each batch's (mean loss, mean bits per pixel)."""
    logged = []
    for i, batch in enumerate(batches):
        later = i < len(batches) - 1 and getattr(losses, "no_sync", None)
        with later() if later else contextlib.nullcontext():
            per_sample, bpp = losses(batch)
            level = torch.cat([level for _, level in batch])
            (balance_levels(per_sample, level, level_loss, reduce) / len(batches)).backward()
        logged.append((per_sample.mean().item(), bpp.mean().item()))
    return logged


def sample_losses(model, x, level, lambdas, phase: str, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample training loss and bits per pixel of crops x at rate levels `level`: rate plus
    weighted distortion, or (--entropy) the rate alone."""
    pixels = x.shape[-2] * x.shape[-1]
    if phase == "entropy":
        with torch.no_grad():
            y = model.analyse(x, level, dtype)
        bits_y, bits_z, _ = model.latent_bits(y, level)
        bpp = (bits_y + bits_z) / pixels
        return bpp, bpp
    out = model(x, level, dtype)
    mse = torch.mean((out["x_hat"] - x) ** 2, dim=(1, 2, 3))
    bpp = (out["bits_y"] + out["bits_z"]) / pixels
    return rd_cost(bpp, mse, lambdas[level]), bpp


@dataclass(frozen=True)
class Ranks:
    """This process's place in a torchrun launch (its RANK, WORLD_SIZE, LOCAL_RANK and
    LOCAL_WORLD_SIZE); a plain run is rank 0 of 1, for which the collectives below do nothing.
    Every process calls each collective at the same point of the run."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @classmethod
    def from_env(cls) -> "Ranks":
        get = lambda name, default: int(os.environ.get(name, default))
        return cls(get("RANK", 0), get("WORLD_SIZE", 1), get("LOCAL_RANK", 0), get("LOCAL_WORLD_SIZE", 1))

    @property
    def lead(self) -> bool:
        """Process 0: the one that validates, logs, saves and exports."""
        return self.rank == 0

    def sum(self, tensor: torch.Tensor) -> None:
        """Sum `tensor` over the processes, in place."""
        if self.world > 1:
            dist.all_reduce(tensor)

    def mean(self, values, device) -> np.ndarray:
        """The mean of `values` (numbers) over the processes."""
        if self.world == 1:
            return np.asarray(values)
        total = torch.tensor(values, dtype=torch.float64, device=device)
        self.sum(total)
        return (total / self.world).cpu().numpy()

    def any(self, flag: bool, device) -> bool:
        """Whether `flag` holds in any process (a stop that one of them was asked for)."""
        return bool(self.mean([float(flag)], device)[0] > 0)


@dataclass
class Options:
    """A training run (tools/train_image.py's options, where each is explained)."""
    data: Path  # folder of training photos (PNG; the last HOLDOUT by name validate)
    checkpoint: Path  # resumed when it exists; <stem>-best.pt beside it keeps the best average
    model_id: str = "image-hp-v2"  # what export writes: never a released id
    init: str | None = None  # shipped weights to start from without a checkpoint (None: starting_weights)
    steps: int = 20000  # total planned steps (sets the learning-rate decay)
    batch: int = 4
    crop: int = 192
    low_levels: int = 0
    low_crop: int = 384
    accumulate: int = 1
    lr: float = 1e-4
    device: str = "cpu"
    bf16: bool = False
    compile: bool = False
    threads: int = 0  # 0: adapt_threads
    save_every: int = 100
    validate_every: int = 500
    from_scratch: bool = False
    hard: bool = False
    entropy: bool = False
    export: bool = False
    bench: int = 0
    channels: int = ImageModelConfig.channels
    latent_channels: int = ImageModelConfig.latent_channels
    lambdas: tuple[float, ...] | None = None
    channel_groups: tuple[int, ...] | None = None

    @property
    def phase(self) -> str:
        return "hard" if self.hard else "entropy" if self.entropy else "soft"


def newest_released() -> str | None:
    """The released image-hp model with the highest version (`image-hp-v<N>`), if any."""
    shipped = registry.manifest()
    ids = [m for m in registry.released() if shipped[m].get("family") == FAMILY.name]
    version = lambda model_id: int(m.group(1)) if (m := re.search(r"-v(\d+)$", model_id)) else 0
    return max(ids, key=version, default=None)


def starting_weights(opts: Options) -> str | None:
    """The shipped model a run without a checkpoint starts from: `init` when given; else the
    export id's own weights once exported (they carry training across sessions); else the newest
    released model; None (a new model) for --from-scratch and --bench, or when none is shipped."""
    if opts.bench or opts.from_scratch:
        return None
    if opts.init:
        return opts.init
    if registry.weights_path(opts.model_id).exists():
        return opts.model_id
    return newest_released()


def export_weights(model_id: str, model: ImageModel) -> Path:
    """Write a model as the shipped weights `model_id` (frozen_tensors; the manifest records their
    digest, unreleased). Raises the registry's ModelError for a released id."""
    model = copy.deepcopy(model).cpu()
    return registry.export(model_id, FAMILY.name, frozen_tensors(model), model.cfg.to_json())


def initial_model(opts: Options, state: dict | None) -> tuple[ImageModel, list[str], bool, bool]:
    """The model a run starts from: the checkpoint `state`'s, else the shipped starting_weights,
    else a new one; with the rate levels and channel groups `opts` asks for. Returns it, the
    parameters the checkpoint predates, whether it was restructured (a new phase, levels or
    groups: the averages restart) and whether it came from shipped weights."""
    predated, restructured, from_shipped = [], False, False
    start = None if state else starting_weights(opts)
    if state:
        cfg = ImageModelConfig.from_json(state["config"])
        model = ImageModel(cfg)
        predated = load_checkpoint_weights(model, state["model"])
        # checkpoints before the entropy phase say hard=True/False
        if state.get("phase", "hard" if state.get("hard") else "soft") != opts.phase:
            # a new phase starts from the average weights
            print(f"{opts.phase} phase from step {state['step']}", flush=True)
            model.load_state_dict(state.get("ema", state["model"]))
            restructured = True
    elif start and (opts.init or registry.weights_path(start).exists()):  # a given --init must exist
        config, tensors = registry.load_tensors(start, verify=False)
        cfg = ImageModelConfig.from_json(config)
        model = model_from_frozen(cfg, tensors)
        from_shipped = True
        print(f"starting from shipped weights {start}", flush=True)
    else:
        cfg = ImageModelConfig(channels=opts.channels, latent_channels=opts.latent_channels,
                               hyper_channels=opts.channels, channel_groups=opts.channel_groups or (),
                               **({"lambdas": opts.lambdas} if opts.lambdas else {}))
        model = ImageModel(cfg)
    if opts.lambdas and opts.lambdas != cfg.lambdas:
        print(f"rate levels {cfg.lambdas} -> {opts.lambdas}", flush=True)
        model = with_lambdas(model, opts.lambdas)
        cfg = model.cfg
        restructured = True
    if opts.channel_groups and opts.channel_groups != cfg.channel_groups:
        print(f"channel groups {cfg.channel_groups} -> {opts.channel_groups}", flush=True)
        model = with_channel_groups(model, opts.channel_groups)
        restructured = True
    return model, predated, restructured, from_shipped


def train(opts: Options) -> None:
    """Train (or, with opts.export, export the weight average and return), resuming from
    opts.checkpoint when it exists; in each process of a torchrun launch, as one of its
    DistributedDataParallel processes (module docstring). Raises registry's ModelError for a
    missing --init or a released export id."""
    ranks = Ranks.from_env()
    if ranks.world == 1:
        return train_process(opts, ranks)
    device = torch.device(opts.device)
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    # SIGINT and SIGTERM (stop_on_signals) go to the main thread alone, never to the threads the
    # process group starts (NCCL's at once, given the device), whose interrupted system calls
    # crashed the process (gloo)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        if device.type == "cuda":
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    # 1x1 kernels in channels-last: the gradient's strides differ from the weight's, not its
    # memory order (DDP copies it into its bucket as is)
    warnings.filterwarnings("ignore", "Grad strides do not match bucket view strides")
    try:
        with open(os.devnull, "w") as null, \
                contextlib.nullcontext() if ranks.lead else contextlib.redirect_stdout(null):
            train_process(replace(opts, device=str(device)), ranks)
    finally:
        dist.destroy_process_group()


def train_process(opts: Options, ranks: Ranks) -> None:
    """train's work in one process: a plain run, or rank `ranks.rank` of a torchrun launch (the
    weight averages, validation and checkpoints live in process 0 alone)."""
    phase = opts.phase
    # the processes on one machine share its cores
    cores = max(1, (os.cpu_count() or 1) // ranks.local_world)
    if opts.threads or ranks.local_world > 1:
        torch.set_num_threads(opts.threads or cores)
    torch.backends.cudnn.benchmark = True  # CUDA: fastest convolution algorithms per shape

    # every process loads the checkpoint (onto the CPU: one saved on any device resumes on any)
    state = torch.load(opts.checkpoint, weights_only=False, map_location="cpu") if opts.checkpoint.exists() else None
    model, predated, restructured, from_shipped = initial_model(opts, state)
    cfg = model.cfg
    # channels-last convolutions are ~1.5x faster on CPU (oneDNN)
    model.to(opts.device, memory_format=torch.channels_last)
    step = state["step"] if state else 0
    if ranks.lead:
        average = resume_average(model, None if restructured else state)
        slow_average = resume_average(model, None if restructured else state, "ema_slow")
    as_saved = state and not (predated or restructured)  # optimizer and level losses carry on
    if phase == "hard":
        freeze_encoder_side(model)
    elif phase == "entropy":
        train_only_entropy_models(model)
    if opts.export:
        if ranks.lead:
            path = export_weights(opts.model_id, average)
            print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) at step {step}")
        return

    if opts.compile:  # after the deep copy above: the average must not share compiled code
        # Compiled code is specialised to the thread count (dynamo's global-state guard), so
        # each switch of adapt_threads compiles anew: room for both counts' variants (the
        # default limit of 8 per function sent the GDNs back to eager, a slower run).
        torch._dynamo.config.cache_size_limit = 64
        # two crop sizes (--low-levels): one specialised variant each, not one dynamic-shape one
        torch._dynamo.config.automatic_dynamic_shapes = False
        model.g_a.compile()
        model.g_s.compile()
    params = sum(p.numel() for p in model.parameters())
    print(f"model {cfg} params {params / 1e6:.2f} M, step {step}", flush=True)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    fast = [p for n, p in trained if n.startswith(FAST_PARAMETERS)]
    slow = [p for n, p in trained if not n.startswith(FAST_PARAMETERS)]
    opt = torch.optim.Adam([{"params": slow, "scale": 1.0},
                            {"params": fast, "scale": FAST_LR_SCALE}], lr=opts.lr)
    fresh_optimizer = not (as_saved and "optimizer" in state)
    if not fresh_optimizer:
        opt.load_state_dict(state["optimizer"])
    files = sorted(opts.data.glob("*.png"))
    parts = batch_parts(cfg.levels, opts.batch, opts.crop, opts.low_levels, opts.low_crop)
    all_images = load_images(files[:-HOLDOUT])
    train_images = {crop: large_enough(all_images, crop) for crop, _, _ in parts}
    val_images = load_images(files[-HOLDOUT:], scales=(0.5,))
    # crops (rng), rate levels and noise (torch's generator) of each process its own; process 0's
    # those of a plain run
    rng = random.Random(f"{step}/{ranks.rank}" if ranks.rank else step)
    if ranks.rank:
        torch.manual_seed(torch.initial_seed() + ranks.rank)
    lambdas = torch.tensor(cfg.lambdas, device=opts.device)
    losses = BatchLoss(model, lambdas, phase, torch.bfloat16 if opts.bf16 else None)
    if ranks.world > 1:
        # starts every process from process 0's weights; each phase gives all the parameters it
        # trains a gradient in every step (those it freezes are not DDP's): no find_unused_parameters
        losses = torch.nn.parallel.DistributedDataParallel(
            losses, device_ids=[opts.device] if torch.device(opts.device).type == "cuda" else None)
    # weights of the lowest validation loss so far (training is noisy; export the best)
    best_path = opts.checkpoint.with_name(opts.checkpoint.stem + "-best.pt")
    best = torch.load(best_path, weights_only=False, map_location="cpu") if best_path.exists() and ranks.lead else None
    best_loss = best["val_loss"] if best and best["config"] == cfg.to_json() else math.inf
    # running mean loss per level (balance_levels); NaN until a level is seen
    resumed = as_saved and "level_loss" in state
    level_loss = torch.tensor(state["level_loss"] if resumed else [math.nan] * cfg.levels, device=opts.device)
    if from_shipped and ranks.lead:
        # the starting weights' curve: the reference a session's validation lines are compared
        # against (tools/validation_bd.py ... 0), and the loss the best average must beat
        best_loss = min(best_loss, log_validation(average, val_images, opts.device, step))
    t0, log = time.time(), []
    first_step = step
    stop, halt = stop_on_signals(), False
    while step < opts.steps and not halt:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, opts.lr, first_step, opts.steps, fresh_optimizer) * g["scale"]
        opt.zero_grad()
        batches = [draw_batch(parts, train_images, rng, opts.device) for _ in range(opts.accumulate)]
        log += backward_batches(losses, batches, level_loss, ranks.sum if ranks.world > 1 else None)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if ranks.lead:
            # the averages' horizons count batches: K accumulated batches per step shorten them K-fold in steps
            update_average(average, model, EMA_DECAY ** opts.accumulate)
            update_average(slow_average, model, SLOW_EMA_DECAY ** opts.accumulate)
        step += 1
        # a signal to any process stops all of them after the same step
        halt = ranks.any(bool(stop), opts.device)
        if opts.bench and step == first_step + BENCH_WARMUP:
            bench_start = time.time()
        if opts.bench and step == first_step + BENCH_WARMUP + opts.bench:
            print(f"{(time.time() - bench_start) / opts.bench:.3f} s/step over {opts.bench} steps")
            return
        if step % 20 == 0:
            if not opts.threads:
                adapt_threads(cores, ranks.local_world)
            l, b = ranks.mean(np.mean(log, axis=0), opts.device)
            print(f"step {step} loss {l:.4f} bpp {b:.3f} {(time.time() - t0) * opts.accumulate / len(log):.2f}s/step "
                  f"threads {torch.get_num_threads()}", flush=True)
            t0, log = time.time(), []
        if ranks.lead and (step % opts.save_every == 0 or step == opts.steps or halt):
            save_checkpoint(opts.checkpoint, cfg, model, step, optimizer=opt.state_dict(),
                            ema=average.state_dict(), ema_slow=slow_average.state_dict(),
                            level_loss=level_loss.tolist(), phase=phase)
        if ranks.lead and step % opts.validate_every == 0 and not halt:
            for avg, label in ((average, "validate"), (slow_average, "validate slow")):
                val_loss = log_validation(avg, val_images, opts.device, step, label)
                if val_loss < best_loss:
                    best_loss = val_loss
                    save_checkpoint(best_path, cfg, avg, step, val_loss=val_loss)
    if halt:
        print(f"stopped at step {step}, checkpoint saved", flush=True)
