"""image-hp: a variable-rate mean-scale hyperprior image model with an exact integer hyper-decoder.

Data flow (Ballé et al. 2018, "Variational image compression with a scale hyperprior";
Minnen et al. 2018 mean-scale prior; Cui et al. 2021 gain units for one model at many rates):

    x ─g_a─► y·gain[r] ─h_a─► z·hgain[r] ─round─► z_sym ──────────────► ANS coder
                │                                   │
                │               integer h_s(z_sym · hinv[r]) ─► mean, scale index
                └──────── round(y - mean) ─► y_sym ─────────────────────► ANS coder
    decoder: (y_sym + mean) · inv_gain[r] ─g_s─► x_hat

g_a / g_s / h_a run in float (they decide pixels and encoder choices, not probabilities);
h_s runs in exact integer arithmetic (intnet.py) because its outputs choose CDF tables.
The rate position r is continuous: gains are interpolated between the trained levels.
"""

from dataclasses import asdict, dataclass
import json
import math

import torch
from torch import nn
import torch.nn.functional as F

from .constants import ACT_FRAC_BITS, NUM_SCALES, RATE_FRAC_BITS, SYMBOL_MAX
from .intnet import HyperSynthesis, IntegerHyperSynthesis, hyper_layers, scale_from_index_value
from .layers import SimplifiedGDN, conv, deconv

# Gain at the middle rate level when training starts: lifts y (a few tenths at
# initialisation) to where rounding keeps detail.
INITIAL_GAIN = 5.0
# Padding multiple: g_a downsamples by 16 and h_a by 4 more.
DOWNSAMPLING = 64
_LIKELIHOOD_FLOOR = 1e-9


@dataclass(frozen=True)
class ImageModelConfig:
    """Architecture a decoder must rebuild; stored in the weights file."""
    channels: int = 128          # N: transform width
    latent_channels: int = 192   # M: channels of y
    hyper_channels: int = 128    # channels of z
    lambdas: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ImageModelConfig":
        d = json.loads(text)
        d["lambdas"] = tuple(d["lambdas"])
        return cls(**d)

    @property
    def levels(self) -> int:
        return len(self.lambdas)


def gaussian_likelihood(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Probability mass of the unit bin around x under N(mean, scale^2)."""
    v = (x - mean).abs()
    c = 1 / (scale * 2 ** 0.5)
    upper = 0.5 * torch.erfc(-(0.5 - v) * c)
    lower = 0.5 * torch.erfc(-(-0.5 - v) * c)
    return (upper - lower).clamp_min(_LIKELIHOOD_FLOOR)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


class ImageModel(nn.Module):
    """The float model: training `forward`, and the transforms used by coding."""

    def __init__(self, cfg: ImageModelConfig = ImageModelConfig()):
        super().__init__()
        self.cfg = cfg
        n, m, nz, k = cfg.channels, cfg.latent_channels, cfg.hyper_channels, cfg.levels
        self.g_a = nn.Sequential(conv(3, n), SimplifiedGDN(n), conv(n, n), SimplifiedGDN(n),
                                 conv(n, n), SimplifiedGDN(n), conv(n, m))
        self.g_s = nn.Sequential(deconv(m, n), SimplifiedGDN(n, inverse=True),
                                 deconv(n, n), SimplifiedGDN(n, inverse=True),
                                 deconv(n, n), SimplifiedGDN(n, inverse=True), deconv(n, 3))
        self.h_a = nn.Sequential(conv(m, nz, 3, 1), nn.ReLU(), conv(nz, nz), nn.ReLU(),
                                 conv(nz, nz))
        self.h_s = HyperSynthesis(nz, m)
        # Gains in log domain, one row per rate level (low rate first). They start apart, as
        # rate-distortion theory suggests (quantization step ~ 1/sqrt(lambda)), around
        # INITIAL_GAIN, so every level codes something different from the first step.
        lam = torch.tensor(cfg.lambdas, dtype=torch.float64)
        spread = 0.5 * torch.log(lam / torch.sqrt(lam.min() * lam.max())) + math.log(INITIAL_GAIN)
        self.log_gain = nn.Parameter(spread.float()[:, None].repeat(1, m))
        self.log_inv_gain = nn.Parameter(-spread.float()[:, None].repeat(1, m))
        self.log_hyper_gain = nn.Parameter(torch.zeros(k, nz))
        self.log_hyper_inv_gain = nn.Parameter(torch.zeros(k, nz))
        # Per-channel scale-table position of the zero-mean Gaussian prior on z.
        # Gains and these positions are few parameters that must move far: train them with a
        # larger learning rate (see FAST_PARAMETERS).
        self.z_scale_t = nn.Parameter(torch.full((nz,), 30.0))

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass. x: (B,3,H,W) in [0,1]; level: (B,) long rate levels.

        Rate uses additive uniform noise; the synthesis and hyper-decoder see rounded values
        with a straight-through gradient (mixed quantization, Minnen & Singh 2020).
        Returns x_hat and per-sample bits of y and z.
        """
        g = self.log_gain.exp()[level][:, :, None, None]
        ig = self.log_inv_gain.exp()[level][:, :, None, None]
        hg = self.log_hyper_gain.exp()[level][:, :, None, None]
        hig = self.log_hyper_inv_gain.exp()[level][:, :, None, None]
        y = self.g_a(x) * g
        z = self.h_a(y) * hg
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_scale = scale_from_index_value(self.z_scale_t)[None, :, None, None]
        z_lik = gaussian_likelihood(z_noisy, torch.zeros_like(z), z_scale)
        mean, t = self.h_s(ste_round(z) * hig)
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_lik = gaussian_likelihood(y_noisy, mean, scale_from_index_value(t))
        y_hat = ste_round(y - mean) + mean
        x_hat = self.g_s(y_hat * ig)
        bits = lambda lik: -torch.log2(lik).flatten(1).sum(1)
        return {"x_hat": x_hat, "bits_y": bits(y_lik), "bits_z": bits(z_lik)}


# Parameters that tools/train_image.py trains with a larger learning rate.
FAST_PARAMETERS = ("log_gain", "log_inv_gain", "log_hyper_gain", "log_hyper_inv_gain", "z_scale_t")


def interpolate_levels(table: torch.Tensor, rate_fx: int) -> torch.Tensor:
    """Row of a per-level log-domain table at a fixed-point rate position (geometric interp)."""
    lo = rate_fx >> RATE_FRAC_BITS
    frac = (rate_fx & ((1 << RATE_FRAC_BITS) - 1)) / (1 << RATE_FRAC_BITS)
    hi = min(lo + 1, table.shape[0] - 1)
    return ((1 - frac) * table[lo] + frac * table[hi]).exp()


def interpolate_levels_int(table: torch.Tensor, rate_fx: int) -> torch.Tensor:
    """Row of a per-level integer table at a fixed-point rate position (exact linear interp)."""
    lo = rate_fx >> RATE_FRAC_BITS
    frac = rate_fx & ((1 << RATE_FRAC_BITS) - 1)
    hi = min(lo + 1, table.shape[0] - 1)
    return (table[lo] * ((1 << RATE_FRAC_BITS) - frac) + table[hi] * frac) >> RATE_FRAC_BITS


def frozen_tensors(model: ImageModel) -> dict[str, torch.Tensor]:
    """Everything coding needs: float transforms in fp16 (they only shape pixels), the
    probability path (hyper-decoder, hyper gains, z table indices) in integers."""
    int_hs = model.h_s.freeze()
    out = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()
           if k.split(".")[0] in ("g_a", "g_s", "h_a", "log_gain", "log_inv_gain",
                                  "log_hyper_gain")}
    for i, (w, b) in enumerate(zip(int_hs.weights, int_hs.biases)):
        out[f"h_s_int.{i}.weight"] = w.contiguous()
        out[f"h_s_int.{i}.bias"] = b.contiguous()
    hig = model.log_hyper_inv_gain.detach().double().exp()
    out["hyper_inv_gain_fx"] = torch.round(hig * 2 ** ACT_FRAC_BITS).to(torch.int64)
    out["z_scale_index"] = torch.round(model.z_scale_t.detach().double()).clamp(0, NUM_SCALES - 1).to(torch.int64)
    return out


def integer_hyper_synthesis(cfg: ImageModelConfig, tensors: dict[str, torch.Tensor]) -> IntegerHyperSynthesis:
    """The exact integer hyper-decoder stored in frozen tensors (see frozen_tensors)."""
    layers = hyper_layers(cfg.hyper_channels, cfg.latent_channels)
    return IntegerHyperSynthesis(layers, [tensors[f"h_s_int.{i}.weight"] for i in range(len(layers))],
                                 [tensors[f"h_s_int.{i}.bias"] for i in range(len(layers))])


def model_from_frozen(cfg: ImageModelConfig, tensors: dict[str, torch.Tensor]) -> ImageModel:
    """Float model initialised from frozen tensors (resuming training from shipped weights)."""
    model = ImageModel(cfg)
    state = model.state_dict()
    for k, v in tensors.items():
        if k in state:
            state[k] = v.float()
    model.load_state_dict(state)
    model.h_s.load_integer(integer_hyper_synthesis(cfg, tensors))
    with torch.no_grad():
        model.log_hyper_inv_gain.copy_((tensors["hyper_inv_gain_fx"].double() / 2 ** ACT_FRAC_BITS).log())
        model.z_scale_t.copy_(tensors["z_scale_index"].float())
    return model


def pad_to_multiple(x: torch.Tensor, multiple: int = DOWNSAMPLING) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
