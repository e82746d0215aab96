"""Train the image-hp model on ../shared/data/train (never Kodak); resumable, loggable.

    python tools/train_image.py --steps 20000            # runs / resumes from the checkpoint, else --init
    python tools/train_image.py --export                 # writes codec/weights/image-hp-v2.safetensors
    python tools/train_image.py --export --checkpoint tools/checkpoints/image-hp-best.pt
    python tools/train_image.py --init image-hp-v1 --steps 20000   # start from other shipped weights
    nohup python tools/train_image.py --steps 100000 > train.log 2>&1 &
    torchrun --nproc_per_node 2 tools/train_image.py --steps 20000   # 2 processes (GPUs), --batch each

Released models (image-hp-v1) never change: training exports under --model-id (image-hp-v2).
"""

import argparse
from pathlib import Path

from neco.codec.image_hp import training
from neco.codec.image_hp.training import Options
from neco.formats.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "train"


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__ + "\n" + training.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-id", default=Options.model_id,
                   help="the model id --export writes (never a released one: those never change)")
    p.add_argument("--init", help="shipped weights to start from when there is no checkpoint (default: the "
                                  "--model-id's once exported, else the newest released image-hp model)")
    p.add_argument("--steps", type=int, default=Options.steps, help="total planned steps (sets the LR decay)")
    # 4: per CPU-second as fast as 8 or 2 (docs/RECORD.md)
    p.add_argument("--batch", type=int, default=Options.batch,
                   help="crops per step and process (under torchrun, a step's batch is N times this)")
    p.add_argument("--crop", type=int, default=Options.crop)
    p.add_argument("--low-levels", type=int, default=Options.low_levels,
                   help="train the N lowest rate levels on one --low-crop crop each per step, the "
                        "--batch crops on the other levels (see batch_parts)")
    p.add_argument("--low-crop", type=int, default=Options.low_crop)
    # large batches pay on a GPU (docs/RECORD.md)
    p.add_argument("--accumulate", type=int, default=Options.accumulate,
                   help="average the gradients of this many batches per optimizer step (a larger "
                        "effective batch in the same memory)")
    # higher rates trained faster early on but left the iterates noisy (docs/RECORD.md)
    p.add_argument("--lr", type=float, default=Options.lr)
    p.add_argument("--device", default=Options.device,
                   help="cpu or cuda (under torchrun, cuda is each process's cuda:<LOCAL_RANK>)")
    p.add_argument("--data", type=Path, default=DATA,
                   help="folder of training photos (PNG; the last HOLDOUT by name validate)")
    p.add_argument("--bf16", action="store_true",
                   help="analysis and synthesis transforms in bfloat16 (~3x faster on CPUs with AMX; "
                        "rates and the probability path stay float32)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the transforms (faster steps after ~40 s of compiling)")
    p.add_argument("--threads", type=int, default=Options.threads,
                   help="torch threads per process (0 = adapt: all cores, shared among the processes of a "
                        "torchrun launch, one fewer while other work loads the machine)")
    p.add_argument("--checkpoint", type=Path, default=ROOT / "tools" / "checkpoints" / "image-hp.pt")
    p.add_argument("--save-every", type=int, default=Options.save_every)
    p.add_argument("--validate-every", type=int, default=Options.validate_every)
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
    p.add_argument("--export", action="store_true", help="write the weights as --model-id and exit")
    p.add_argument("--bench", type=int, default=Options.bench,
                   help="time this many steps (after BENCH_WARMUP untimed ones: compilation) and exit")
    p.add_argument("--channels", type=int, default=Options.channels)
    # more channels of y for a trained model did not pay off (docs/RECORD.md)
    p.add_argument("--latent-channels", type=int, default=Options.latent_channels)
    p.add_argument("--lambdas", type=lambda v: tuple(float(x) for x in v.split(",")),
                   help="comma-separated rate levels, low first: a new model's, or new levels for a "
                        "trained one (gain rows read off its tables; the optimizer restarts)")
    # a channel context added to trained transforms stayed unused (docs/RECORD.md)
    p.add_argument("--channel-groups", type=lambda v: tuple(int(x) for x in v.split(",")),
                   help="comma-separated channel groups of y (e.g. 16,16,32,64,64): a new model's, or "
                        "a channel context for a trained one without (starts at zero: the same "
                        "probabilities; the optimizer restarts)")
    return Options(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    try:
        training.train(parse_args(argv))
    except ModelError as exc:  # a released --model-id, a missing --init: the registry's one line
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
