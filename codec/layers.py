"""Float network layers used by the analysis and synthesis transforms (pixels side only)."""

import torch
from torch import nn
import torch.nn.functional as F


class SimplifiedGDN(nn.Module):
    """Simplified generalized divisive normalization: y_i = x_i / (beta_i + sum_j gamma_ij |x_j|).

    Johnston et al., "Computationally efficient neural image compression" (2019): the L1 form
    of GDN (Ballé et al., 2016) is cheaper and trains as well. With ``inverse=True`` it
    multiplies instead (IGDN), for the synthesis transform.
    """

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels).view(channels, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta.abs() + 1e-6
        gamma = self.gamma.abs()
        norm = F.conv2d(x.abs(), gamma, beta)
        return x * norm if self.inverse else x / norm


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2,
                              output_padding=stride - 1)


class Residual(nn.Module):
    """x + body(x)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def post_filter(channels: int) -> Residual:
    """The last stage of g_s: four 3x3 convolutions at pixel resolution adding a correction to
    the deconvolution stack's output (~20 kMAC/pixel at 32 channels, ~half the stack's cost).

    The stack ends in one 128-to-3 transposed convolution, a bottleneck for fine detail that this
    filter relieves; a second filter after it did not pay (docs/RECORD.md). Its last layer starts
    at zero, so adding it to a trained model changes nothing at first.
    """
    last = conv(channels, 3, 3, 1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return Residual(nn.Sequential(conv(3, channels, 3, 1), nn.ReLU(), conv(channels, channels, 3, 1), nn.ReLU(),
                                  conv(channels, channels, 3, 1), nn.ReLU(), last))
