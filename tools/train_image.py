"""Train the image-hp model on ../shared/data/train (never Kodak); resumable, loggable.

    python tools/train_image.py --steps 20000            # runs / resumes from the checkpoint
    python tools/train_image.py --export                 # writes codec/weights/<id>.safetensors
    python tools/train_image.py --export --checkpoint tools/checkpoints/image-hp-best.pt
    nohup python tools/train_image.py --steps 100000 > train.log 2>&1 &

The checkpoint (model, its moving average, optimizer, step) is written atomically every --save-every
steps and when Ctrl-C or SIGTERM stops the run, so an interrupted run continues where it stopped.
Without a checkpoint, training starts from the shipped weights when they exist (sessions do not keep
machines; the shipped file is the weights-only checkpoint that carries training across sessions).
Each sample of a batch draws its own rate level; the loss is bits/pixel + lambda * 255^2 * MSE (x in
[0, 1]), each sample's divided by its level's running mean (balance_levels). Four training photos
are held out for validation (logged RD) of two averages of the weights (EMA_DECAY, SLOW_EMA_DECAY);
the average with the lowest validation loss is kept in <checkpoint>-best.pt (a session that starts
from the shipped weights validates them first: the best must beat them). Export writes the average.

Phases: soft (the default: rates of noisy latents, everything learns), then optionally
--entropy (only the hyperprior and context model learn, on the rate alone) and --hard (the
decoder side and entropy models learn on the rate of the rounded latents). Each new phase
starts from the average weights with a fresh optimizer.
"""

import argparse
import copy
import math
import os
from pathlib import Path
import random
import signal
import sys
import time

import numpy as np
from PIL import Image
import torch

from neco.codec.image_model import (FAST_PARAMETERS, ImageModel, ImageModelConfig, model_from_frozen, rd_cost,
                                    with_channel_groups, with_lambdas)
from neco.codec import registry

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "train"
HOLDOUT = 4
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

    Why split: crop size trades the low levels against the high ones. From the 254.5k weights,
    2,500 steps of 16x192^2 (against the 4x384^2 before) lowered the rate at equal PSNR of the
    top three levels by 1.7-3.6 % and raised it at levels 0-5 by 0.4-2.8 % (holdout); the
    session before, 2x384^2 after 4x256^2 gained 1.3 % at the low levels and lost 0.9 % at the
    high ones. The low levels code z at 1/64 resolution and lean on the hyperprior, whose
    view of a 192^2 crop is 3x3 positions, mostly border."""
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


def adapt_threads(cores: int) -> None:
    """Use one thread fewer while other processes load the machine.

    OpenMP threads wait for each other at every parallel region, so with another busy process
    sharing a core, two threads run slower than one.
    """
    others = os.getloadavg()[0] - torch.get_num_threads()
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
# longer average is steadier: from the 254.5k weights (16x192^2 at 5e-5), its holdout BD-rate
# was 0.06-0.49 % better than the 0.998 average's at each of the 11 validations to step 5,500.
SLOW_EMA_DECAY = 0.9995
# Horizon of the per-level running mean of the loss (see balance_levels), in observations.
LEVEL_LOSS_DECAY = 0.99


def balance_levels(per_sample: torch.Tensor, level: torch.Tensor, level_loss: torch.Tensor) -> torch.Tensor:
    """The batch loss with each sample's loss divided by its rate level's running mean.

    The top level's loss is ~35x the bottom's, so a plain mean lets the high rates steer the
    shared transforms. Dividing by the level's mean makes the gradient that of the mean over
    levels of log(loss): every level's relative improvement counts the same, as in a BD-rate.
    Updates `level_loss` (NaN: level not seen yet) in place; the result keeps the plain mean's
    magnitude, so gradient clipping acts as before.
    """
    with torch.no_grad():
        count = torch.zeros_like(level_loss).index_add_(0, level, torch.ones_like(per_sample))
        total = torch.zeros_like(level_loss).index_add_(0, level, per_sample.detach())
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
    one and affords larger batches. Measured: after a decayed soft run, 1,000 steps of 16 crops
    of 256² (~0.33 s each) took the holdout BD-rate from -1.98 to -2.69 % (vs the run's starting
    weights), where joint training at that stage gains ~0.07 % per 1,000 steps of 4 crops of
    192²; an experiment on cached analysis outputs saturated at the same ~-0.7 %, and with the
    hyper-decoder's upsampled layers doubled (64 -> 128 channels) gained no more."""
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


def backward_batches(model, batches, lambdas, level_loss, phase: str, dtype) -> list[tuple[float, float]]:
    """Backpropagate the level-balanced loss of each of `batches` (see draw_batch), scaled by
    1 / len(batches), so the gradients add up to their mean: one batch len(batches) times as
    large, in the memory of one (--accumulate). Returns each batch's (mean loss, mean bits per pixel)."""
    logged = []
    for batch in batches:
        per_sample, bpp = map(torch.cat, zip(*(sample_losses(model, x, level, lambdas, phase, dtype)
                                               for x, level in batch)))
        level = torch.cat([level for _, level in batch])
        (balance_levels(per_sample, level, level_loss) / len(batches)).backward()
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-id", default="image-hp-v1")
    p.add_argument("--steps", type=int, default=20000, help="total planned steps (sets the LR decay)")
    # Per CPU-second, batches of 4 trained faster than 8 (holdout BD-rate -2.4 % in 1,500 steps
    # of 4 vs -2.0 % in 1,000 of 8, 0.23 vs 0.46 s/step) and as fast as 2 (whose high levels lagged)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--low-levels", type=int, default=0,
                   help="train the N lowest rate levels on one --low-crop crop each per step, the "
                        "--batch crops on the other levels (see batch_parts)")
    p.add_argument("--low-crop", type=int, default=384)
    # On a GPU, 6,000 steps of 88 crops of 256^2 from the 262.5k weights gained 1.9 % holdout
    # BD-rate, twice the gain per trained pixel of the CPU's 16x192^2 steps: larger batches pay.
    p.add_argument("--accumulate", type=int, default=1,
                   help="average the gradients of this many batches per optimizer step (a larger "
                        "effective batch in the same memory)")
    # 3e-4 trained faster early on but by step 5.6k its iterates were noisy: validation loss 3.88
    # (raw weights) vs 3.06 (their average); after 300 steps at 1e-4: 2.98 raw, 2.90 averaged.
    # At step 16.5k (batch 4), 1,000 steps at 2e-4 gained -0.3 % BD-rate, at 1e-4 -0.8 %.
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", type=Path, default=DATA,
                   help="folder of training photos (PNG; the last HOLDOUT by name validate)")
    p.add_argument("--bf16", action="store_true",
                   help="analysis and synthesis transforms in bfloat16 (~3x faster on CPUs with AMX; "
                        "rates and the probability path stay float32)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the transforms (measured 0.22 vs 0.25 s/step on CPU; ~40 s to compile)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0 = adapt: all cores, one fewer while other work loads the machine)")
    p.add_argument("--checkpoint", type=Path, default=ROOT / "tools" / "checkpoints" / "image-hp.pt")
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--validate-every", type=int, default=500)
    p.add_argument("--from-scratch", action="store_true", help="ignore the shipped weights")
    later_phase = p.add_mutually_exclusive_group()  # one phase per run
    later_phase.add_argument("--hard", action="store_true",
                             help="train the decoder side and the entropy models on the coded rate of the rounded "
                                  "latents, the encoder side frozen (soft then hard, Guo et al. 2021): the noisy "
                                  "training rate charges ~0.15 bits for every latent that is always zero")
    later_phase.add_argument("--entropy", action="store_true",
                             help="train only the entropy models (hyperprior, context model) on the rate alone, the "
                                  "transforms frozen: no synthesis runs, so larger batches pay (e.g. --batch 16 "
                                  "--crop 256); at the end of a soft run, before --hard")
    p.add_argument("--export", action="store_true", help="write the shipped weights and exit")
    p.add_argument("--bench", type=int, default=0,
                   help="time this many steps (after BENCH_WARMUP untimed ones: compilation) and exit")
    p.add_argument("--channels", type=int, default=ImageModelConfig.channels)
    # Growing a trained image-hp-v1 from 192 to 320 channels of y (its top levels are capped by
    # the 192: unquantized latents give 37.1 dB on held-out 046, a generic 192-dimension linear
    # transform 36.8) did not pay off within a session at lr 1e-4: the new channels stayed zero,
    # or, started alive with their rows fitted alone first, cost +0.57 bpp for +0.08 dB at the
    # top level after 1,900 steps. The procedure is in commit fcf62b9.
    p.add_argument("--latent-channels", type=int, default=ImageModelConfig.latent_channels)
    p.add_argument("--lambdas", type=lambda v: tuple(float(x) for x in v.split(",")),
                   help="comma-separated rate levels, low first: a new model's, or new levels for a "
                        "trained one (gain rows read off its tables; the optimizer restarts)")
    # Added to the step-57.5k image-hp-v1 (16,16,32,64,64), the channel context stayed unused:
    # after 8,800 steps its weights were ~0.0003 (the anchor block's ~0.008) and zeroing them
    # changed the holdout BD-rate by -0.01 %; fitting them alone at lr 1e-3 (300 steps) +0.002 %.
    # Transforms trained without it leave the groups little to predict from each other.
    p.add_argument("--channel-groups", type=lambda v: tuple(int(x) for x in v.split(",")),
                   help="comma-separated channel groups of y (e.g. 16,16,32,64,64): a new model's, or "
                        "a channel context for a trained one without (starts at zero: the same "
                        "probabilities; the optimizer restarts)")
    args = p.parse_args()
    phase = "hard" if args.hard else "entropy" if args.entropy else "soft"
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True  # CUDA: fastest convolution algorithms per shape
    cores = os.cpu_count() or 1

    state = torch.load(args.checkpoint, weights_only=False) if args.checkpoint.exists() else None
    predated, restructured = [], False  # parameters the checkpoint lacks; a new phase, levels or groups
    from_shipped = False
    if state:
        cfg = ImageModelConfig.from_json(state["config"])
        model = ImageModel(cfg)
        predated = load_checkpoint_weights(model, state["model"])
        # checkpoints before the entropy phase say hard=True/False
        if state.get("phase", "hard" if state.get("hard") else "soft") != phase:
            # a new phase starts from the average weights
            print(f"{phase} phase from step {state['step']}", flush=True)
            model.load_state_dict(state.get("ema", state["model"]))
            restructured = True
    elif registry.weights_path(args.model_id).exists() and not (args.bench or args.from_scratch):
        cfg, tensors = registry.load_tensors(args.model_id, verify=False)
        model = model_from_frozen(cfg, tensors)
        from_shipped = True
        print(f"starting from shipped weights {args.model_id}", flush=True)
    else:
        cfg = ImageModelConfig(channels=args.channels, latent_channels=args.latent_channels,
                               hyper_channels=args.channels, channel_groups=args.channel_groups or (),
                               **({"lambdas": args.lambdas} if args.lambdas else {}))
        model = ImageModel(cfg)
    if args.lambdas and args.lambdas != cfg.lambdas:
        print(f"rate levels {cfg.lambdas} -> {args.lambdas}", flush=True)
        model = with_lambdas(model, args.lambdas)
        cfg = model.cfg
        restructured = True
    if args.channel_groups and args.channel_groups != cfg.channel_groups:
        print(f"channel groups {cfg.channel_groups} -> {args.channel_groups}", flush=True)
        model = with_channel_groups(model, args.channel_groups)
        cfg = model.cfg
        restructured = True
    # channels-last convolutions are ~1.5x faster on CPU (oneDNN); measured 1.33 vs 2.01 s/step
    model.to(args.device, memory_format=torch.channels_last)
    step = state["step"] if state else 0
    average = resume_average(model, None if restructured else state)
    slow_average = resume_average(model, None if restructured else state, "ema_slow")
    as_saved = state and not (predated or restructured)  # optimizer and level losses carry on
    if phase == "hard":
        freeze_encoder_side(model)
    elif phase == "entropy":
        train_only_entropy_models(model)
    if args.export:
        path = registry.export(args.model_id, average)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) at step {step}")
        return

    if args.compile:  # after the deep copy above: the average must not share compiled code
        # Compiled code is specialised to the thread count (dynamo's global-state guard), so
        # each switch of adapt_threads compiles anew; room for both counts' variants, where the
        # default limit of 8 per function sent the GDNs back to eager after a few switches
        # (0.82 instead of 0.77 s/step for the rest of the run).
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
                            {"params": fast, "scale": FAST_LR_SCALE}], lr=args.lr)
    fresh_optimizer = not (as_saved and "optimizer" in state)
    if not fresh_optimizer:
        opt.load_state_dict(state["optimizer"])
    files = sorted(args.data.glob("*.png"))
    parts = batch_parts(cfg.levels, args.batch, args.crop, args.low_levels, args.low_crop)
    all_images = load_images(files[:-HOLDOUT])
    train_images = {crop: large_enough(all_images, crop) for crop, _, _ in parts}
    val_images = load_images(files[-HOLDOUT:], scales=(0.5,))
    rng = random.Random(step)
    lambdas = torch.tensor(cfg.lambdas, device=args.device)
    # weights of the lowest validation loss so far (training is noisy; export the best)
    best_path = args.checkpoint.with_name(args.checkpoint.stem + "-best.pt")
    best = torch.load(best_path, weights_only=False) if best_path.exists() else None
    best_loss = best["val_loss"] if best and best["config"] == cfg.to_json() else math.inf
    # running mean loss per level (balance_levels); NaN until a level is seen
    resumed = as_saved and "level_loss" in state
    level_loss = torch.tensor(state["level_loss"] if resumed else [math.nan] * cfg.levels, device=args.device)
    if from_shipped:
        # the starting weights' curve: the reference a session's validation lines are compared
        # against (tools/validation_bd.py ... 0), and the loss the best average must beat
        best_loss = min(best_loss, log_validation(average, val_images, args.device, step))
    t0, log = time.time(), []
    first_step = step
    dtype = torch.bfloat16 if args.bf16 else None
    stop = stop_on_signals()
    while step < args.steps and not stop:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.lr, first_step, args.steps, fresh_optimizer) * g["scale"]
        opt.zero_grad()
        batches = [draw_batch(parts, train_images, rng, args.device) for _ in range(args.accumulate)]
        log += backward_batches(model, batches, lambdas, level_loss, phase, dtype)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        # the averages' horizons count batches: K accumulated batches per step shorten them K-fold in steps
        update_average(average, model, EMA_DECAY ** args.accumulate)
        update_average(slow_average, model, SLOW_EMA_DECAY ** args.accumulate)
        step += 1
        if args.bench and step == first_step + BENCH_WARMUP:
            bench_start = time.time()
        if args.bench and step == first_step + BENCH_WARMUP + args.bench:
            print(f"{(time.time() - bench_start) / args.bench:.3f} s/step over {args.bench} steps")
            return
        if step % 20 == 0:
            if not args.threads:
                adapt_threads(cores)
            l, b = np.mean(log, axis=0)
            print(f"step {step} loss {l:.4f} bpp {b:.3f} {(time.time() - t0) * args.accumulate / len(log):.2f}s/step "
                  f"threads {torch.get_num_threads()}", flush=True)
            t0, log = time.time(), []
        if step % args.save_every == 0 or step == args.steps or stop:
            save_checkpoint(args.checkpoint, cfg, model, step, optimizer=opt.state_dict(),
                            ema=average.state_dict(), ema_slow=slow_average.state_dict(),
                            level_loss=level_loss.tolist(), phase=phase)
        if step % args.validate_every == 0 and not stop:
            for avg, label in ((average, "validate"), (slow_average, "validate slow")):
                val_loss = log_validation(avg, val_images, args.device, step, label)
                if val_loss < best_loss:
                    best_loss = val_loss
                    save_checkpoint(best_path, cfg, avg, step, val_loss=val_loss)
    if stop:
        print(f"stopped at step {step}, checkpoint saved", flush=True)


if __name__ == "__main__":
    sys.exit(main())
