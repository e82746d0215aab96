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
