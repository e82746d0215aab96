"""image-hp: a variable-rate mean-scale hyperprior image model with a checkerboard and
channel-group context and exact integer networks on the probability path.

Data flow (Ballé et al. 2018, "Variational image compression with a scale hyperprior";
Minnen et al. 2018 mean-scale prior; He et al. 2021, "Checkerboard context model for efficient
learned image compression"; He et al. 2022 (ELIC) uneven channel groups; Cui et al. 2021 gain
units for one model at many rates):

    x ─g_a─► y·gain[r] ─h_a─► z·hgain[r] ─round─► z_sym ─────────────────────► ANS coder
                │                                   │
                │                 integer h_s(z_sym · hinv[r]) ─► h
                │   anchors (i+j even), group k:  params = h + ctx(h, 0, anchors of groups < k)
                │   non-anchors, group k:         params = h + ctx(h, all anchors,
                │                                                  non-anchors of groups < k)
                └──────── round(y - mean) ─► y_sym: anchors, then non-anchors ──► ANS coder
    decoder: (y_sym + mean) · inv_gain[r] ─g_s─► x_hat

g_a / g_s / h_a run in float (they decide pixels and encoder choices, not probabilities);
h_s and the context network ctx run in exact integer arithmetic (intnet.py) because their
outputs choose CDF tables. Half the latents (anchors) are coded without spatial context; the
other half also see their four decoded anchor neighbours, in one parallel pass (no serial
autoregression). With channel groups (ImageModelConfig.channel_groups), each pass codes the
groups one after another, each seeing the earlier groups' latents of that pass, the same
position included. The rate position r is continuous: gains are interpolated between the
trained levels.
"""

from dataclasses import asdict, dataclass
import json
import math

import torch
from torch import nn
import torch.nn.functional as F

from ..entropy import build_gaussian_tables
from ..constants import ACT_FRAC_BITS, ACT_MAX, NUM_SCALES, RATE_FRAC_BITS
from ..intnet import (INITIAL_SCALE_INDEX, ConvLayer, FloatConvNet, IntegerConvNet, context_layers, hyper_layers,
                     scale_from_index_value, split_parameters)
from ..layers import SimplifiedGDN, conv, deconv, post_filter

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
    post_channels: int = 32      # width of the synthesis' residual post-filter (see `post_filter`)
    # rate levels, low rate first: ~0.05 to ~2 bpp on Kodak once trained
    lambdas: tuple[float, ...] = (0.00024, 0.00047, 0.0009, 0.0018, 0.0035, 0.0067, 0.013, 0.025,
                                  0.0483, 0.0932, 0.18)
    # sizes of the channel groups of y, coded one after another, each conditioned on the earlier
    # ones (channel context); () = one group of all channels, no channel context
    channel_groups: tuple[int, ...] = ()

    def __post_init__(self):
        if self.channel_groups and (sum(self.channel_groups) != self.latent_channels
                                    or min(self.channel_groups) < 1):
            raise ValueError(f"channel groups {self.channel_groups} do not split {self.latent_channels} channels")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ImageModelConfig":
        d = json.loads(text)
        d["lambdas"] = tuple(d["lambdas"])
        d["channel_groups"] = tuple(d.get("channel_groups", ()))
        return cls(**d)

    @property
    def levels(self) -> int:
        return len(self.lambdas)

    @property
    def channel_context(self) -> bool:
        return len(self.channel_groups) > 1

    def group_slices(self) -> list[slice]:
        """The channels of each group, in coding order."""
        sizes = self.channel_groups or (self.latent_channels,)
        ends = [sum(sizes[:i + 1]) for i in range(len(sizes))]
        return [slice(end - size, end) for size, end in zip(sizes, ends)]

    def group_rows(self, group: slice) -> torch.Tensor:
        """Rows of a group's parameters in the (means, scale positions) layout of 2M channels."""
        rows = torch.arange(group.start, group.stop)
        return torch.cat([rows, rows + self.latent_channels])


def gaussian_likelihood(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Probability mass of the unit bin around x under N(mean, scale^2)."""
    v = (x - mean).abs()
    c = 1 / (scale * 2 ** 0.5)
    upper = 0.5 * torch.erfc(-(0.5 - v) * c)
    lower = 0.5 * torch.erfc(-(-0.5 - v) * c)
    return (upper - lower).clamp_min(_LIKELIHOOD_FLOOR)


def rd_cost(bpp, mse, lam):
    """The rate-distortion cost bpp + lambda * 255^2 * MSE (MSE of pixels in [0, 1]), the
    convention of CompressAI's lambdas, which `ImageModelConfig.lambdas` follow. Works on
    floats and tensors alike."""
    return bpp + lam * 255 ** 2 * mse


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def transform(net: nn.Module, v: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """A pixel-side transform (g_a, g_s) under autocast to `dtype` (None: as is), back in float32.

    bfloat16 convolutions run ~3x faster on CPUs with AMX (docs/RECORD.md). Only pixels and
    encoder choices see the lower precision: rates, likelihoods and the probability path stay
    float32 (their inputs are cast back here).
    """
    if dtype is None:
        return net(v)
    with torch.autocast(v.device.type, dtype=dtype):
        return net(v).float()


def checkerboard(height: int, width: int, device=None) -> torch.Tensor:
    """(height, width) bool mask of the anchor latents: (row + column) even."""
    i = torch.arange(height, device=device)[:, None]
    j = torch.arange(width, device=device)[None, :]
    return (i + j) % 2 == 0


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
                                 deconv(n, n), SimplifiedGDN(n, inverse=True), deconv(n, 3),
                                 post_filter(cfg.post_channels))
        self.h_a = nn.Sequential(conv(m, nz, 3, 1), nn.ReLU(), conv(nz, nz), nn.ReLU(),
                                 conv(nz, nz))
        self.h_s = FloatConvNet(hyper_layers(nz, m))
        self.context = FloatConvNet(context_layers(m, cfg.channel_context))
        with torch.no_grad():
            # scale positions start mid-table (sigma ~ 2.4), not at 0.11
            self.h_s.convs[-1].bias[m:] = INITIAL_SCALE_INDEX
            # the context starts as no correction: the model starts as a plain hyperprior
            self.context.convs[-1].weight.zero_()
            self.context.convs[-1].bias.zero_()
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

    def forward(self, x: torch.Tensor, level: torch.Tensor, transform_dtype: torch.dtype | None = None
                ) -> dict[str, torch.Tensor]:
        """Training pass. x: (B,3,H,W) in [0,1]; level: (B,) long rate levels.
        transform_dtype: run g_a and g_s in this precision (see `transform`).
        Returns x_hat and per-sample bits of y and z (see `latent_bits`).
        """
        y = self.analyse(x, level, transform_dtype)
        bits_y, bits_z, y_hat = self.latent_bits(y, level)
        ig = self.log_inv_gain.exp()[level][:, :, None, None]
        x_hat = transform(self.g_s, y_hat * ig, transform_dtype)
        return {"x_hat": x_hat, "bits_y": bits_y, "bits_z": bits_z}

    def analyse(self, x: torch.Tensor, level: torch.Tensor, transform_dtype: torch.dtype | None = None
                ) -> torch.Tensor:
        """The latents y of x at each sample's rate level: g_a(x) times the level's gains."""
        return transform(self.g_a, x, transform_dtype) * self.log_gain.exp()[level][:, :, None, None]

    def latent_bits(self, y: torch.Tensor, level: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample bits of y and of its hyper-latent z under the entropy models, and the
        quantized y_hat the synthesis sees.

        Rate uses additive uniform noise in training mode and the rounded values (what the coder
        pays) in eval mode; the synthesis and hyper-decoder see rounded values with a
        straight-through gradient (mixed quantization, Minnen & Singh 2020). The noisy rate
        charges ~0.15 bits for a latent that is always zero (at the smallest table scale), so
        only eval mode measures what a model's files cost.
        """
        hg = self.log_hyper_gain.exp()[level][:, :, None, None]
        hig = self.log_hyper_inv_gain.exp()[level][:, :, None, None]
        z = self.h_a(y) * hg
        z_coded = z + torch.empty_like(z).uniform_(-0.5, 0.5) if self.training else torch.round(z)
        z_scale = scale_from_index_value(self.z_scale_t)[None, :, None, None]
        z_lik = gaussian_likelihood(z_coded, torch.zeros_like(z), z_scale)
        mean, t, y_hat = self.latent_parameters(self.h_s((ste_round(z) * hig).clamp(-ACT_MAX, ACT_MAX)), y,
                                                ste_round)
        y_coded = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else y_hat
        y_lik = gaussian_likelihood(y_coded, mean, scale_from_index_value(t))
        bits = lambda lik: -torch.log2(lik).flatten(1).sum(1)
        return bits(y_lik), bits(z_lik), y_hat

    def latent_parameters(self, h: torch.Tensor, y: torch.Tensor, quantize
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Means, scale-table positions and quantized values of y (B, M, H, W), given the
        hyper-decoder's output h (B, 2M, H, W): the float twin of the coder's passes.

        Coding order: the anchors of each channel group in turn, then the other latents of each
        group in turn. The context network sees [h, decoded anchors (all groups; zeros in the
        anchor pass), decoded latents of the earlier groups in the current pass (channel
        context)]; its first layer is linear, so each input's share is computed once and
        summed (as in the integer coder). `quantize` rounds (straight-through in training, soft
        in encoder refinement).
        """
        anchor = checkerboard(y.shape[-2], y.shape[-1], y.device)
        from_h = self.context.accumulate(h)
        mean1, t1, q1 = self._context_pass(h, y, from_h, anchor, quantize)
        anchors = q1.clamp(-ACT_MAX, ACT_MAX) * anchor
        acc = from_h + self.context.accumulate(anchors, 2 * self.cfg.latent_channels)
        mean2, t2, q2 = self._context_pass(h, y, acc, ~anchor, quantize)
        return torch.where(anchor, mean1, mean2), torch.where(anchor, t1, t2), torch.where(anchor, q1, q2)

    def _context_pass(self, h: torch.Tensor, y: torch.Tensor, acc: torch.Tensor, mask: torch.Tensor, quantize
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(means, scale positions, quantized y) of every channel group in turn, for the
        positions of one pass (`mask`; values elsewhere are unused), given the context network's
        first-layer accumulator from h and the anchors; each group adds the previous group's
        quantized latents at the mask positions (channel context)."""
        groups, out = self.cfg.group_slices(), []
        for k, group in enumerate(groups):
            if k:
                prev = groups[k - 1]
                channel_context = out[-1][2].clamp(-ACT_MAX, ACT_MAX) * mask
                acc = acc + self.context.accumulate(channel_context, 3 * self.cfg.latent_channels + prev.start)
            rows = self.cfg.group_rows(group).to(h.device)
            mean, t = split_parameters((h[:, rows] + self.context.finish(acc, rows)).clamp(-ACT_MAX, ACT_MAX))
            out.append((mean, t, quantize(y[:, group] - mean) + mean))
        return tuple(torch.cat(parts, dim=1) for parts in zip(*out))


# Per-rate-level tables (one row per lambda).
LEVEL_PARAMETERS = ("log_gain", "log_inv_gain", "log_hyper_gain", "log_hyper_inv_gain")
# Parameters (name prefixes) that tools/train_image.py trains with a larger learning rate: few
# values that must move far, and g_s.7, the post-filter, a small module that starts at zero.
FAST_PARAMETERS = LEVEL_PARAMETERS + ("z_scale_t", "g_s.7.")


def with_lambdas(model: ImageModel, lambdas: tuple[float, ...]) -> ImageModel:
    """A copy of a trained model with other rate levels: shared weights are kept, each new
    level's gain rows are read off the old tables piecewise-linearly in log lambda, extended
    linearly beyond the end levels (gains follow log lambda closely, see __init__)."""
    new = ImageModel(ImageModelConfig(**{**asdict(model.cfg), "lambdas": tuple(lambdas)}))
    state = model.state_dict()
    old_log = torch.tensor(model.cfg.lambdas, dtype=torch.float64).log()
    new_log = torch.tensor(lambdas, dtype=torch.float64).log()
    i = (torch.searchsorted(old_log, new_log) - 1).clamp(0, len(old_log) - 2)
    w = ((new_log - old_log[i]) / (old_log[i + 1] - old_log[i])).float()[:, None]
    for name in LEVEL_PARAMETERS:
        table = state[name]
        state[name] = (1 - w) * table[i] + w * table[i + 1]
    new.load_state_dict(state)
    return new


def with_channel_groups(model: ImageModel, channel_groups: tuple[int, ...]) -> ImageModel:
    """A copy of a trained model without channel context that codes y in channel groups, each
    conditioned on the earlier ones. The context network's new channel-context inputs start
    with zero weights, so the copy computes the same probabilities until it is trained."""
    if model.cfg.channel_context or len(channel_groups) < 2:
        raise ValueError(f"channel groups {channel_groups} for a model with {model.cfg.channel_groups}: "
                         "needs two or more groups for a model without")
    new = ImageModel(ImageModelConfig(**{**asdict(model.cfg), "channel_groups": tuple(channel_groups)}))
    state = model.state_dict()
    first = state["context.convs.0.weight"]
    state["context.convs.0.weight"] = torch.cat([first, torch.zeros_like(first[:, :model.cfg.latent_channels])], dim=1)
    new.load_state_dict(state)
    return new


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
    """Everything coding needs, as a model's weights file holds it: float transforms in fp16 (they
    only shape pixels), the probability path (hyper-decoder, context network, hyper gains, z table
    indices, the Gaussian CDF tables) in integers."""
    out = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()
           if k.split(".")[0] in ("g_a", "g_s", "h_a", "log_gain", "log_inv_gain",
                                  "log_hyper_gain")}
    for name, net in (("h_s", model.h_s), ("context", model.context)):
        frozen = net.freeze()
        for i, (w, b) in enumerate(zip(frozen.weights, frozen.biases)):
            out[f"{name}_int.{i}.weight"] = w.contiguous()
            out[f"{name}_int.{i}.bias"] = b.contiguous()
    hig = model.log_hyper_inv_gain.detach().double().exp()
    out["hyper_inv_gain_fx"] = torch.round(hig * 2 ** ACT_FRAC_BITS).to(torch.int64)
    out["z_scale_index"] = torch.round(model.z_scale_t.detach().double()).clamp(0, NUM_SCALES - 1).to(torch.int64)
    out["cdf_tables"] = torch.from_numpy(build_gaussian_tables())
    return out


def integer_networks(cfg: ImageModelConfig, tensors: dict[str, torch.Tensor]
                     ) -> tuple[IntegerConvNet, IntegerConvNet]:
    """The exact integer hyper-decoder and context network stored in frozen tensors."""
    def net(name: str, layers: tuple[ConvLayer, ...]) -> IntegerConvNet:
        return IntegerConvNet(layers, [tensors[f"{name}_int.{i}.weight"] for i in range(len(layers))],
                              [tensors[f"{name}_int.{i}.bias"] for i in range(len(layers))])
    return (net("h_s", hyper_layers(cfg.hyper_channels, cfg.latent_channels)),
            net("context", context_layers(cfg.latent_channels, cfg.channel_context)))


def model_from_frozen(cfg: ImageModelConfig, tensors: dict[str, torch.Tensor]) -> ImageModel:
    """Float model initialised from frozen tensors (resuming training from shipped weights)."""
    model = ImageModel(cfg)
    state = model.state_dict()
    for k, v in tensors.items():
        if k in state:
            state[k] = v.float()
    model.load_state_dict(state)
    hyper, context = integer_networks(cfg, tensors)
    model.h_s.load_integer(hyper)
    model.context.load_integer(context)
    with torch.no_grad():
        model.log_hyper_inv_gain.copy_((tensors["hyper_inv_gain_fx"].double() / 2 ** ACT_FRAC_BITS).log())
        model.z_scale_t.copy_(tensors["z_scale_index"].float())
    return model


def pad_to_multiple(x: torch.Tensor, multiple: int = DOWNSAMPLING) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
