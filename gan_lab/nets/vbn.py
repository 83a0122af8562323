"""Virtual batch normalisation (Salimans 2016; EE807 lecture notes, docs/references.md).

Every batch-norm layer of G normalises an example with the statistics of a reference batch fixed
at the start plus that example alone (weight 1/(R+1)), so an output never depends on the other
examples of its batch. The reference batch's z is a buffer; it runs through G on every forward,
in front of the real batch (R extra samples per forward: that is the cost).
"""

from __future__ import annotations

import torch
from torch import nn


class VirtualBatchNorm(nn.Module):
    """Input (R + N, C, *spatial): the first R rows are the reference batch."""

    def __init__(self, num_features: int, reference_size: int, eps: float = 1e-5):
        super().__init__()
        self.reference_size, self.eps = reference_size, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def _normalise(self, x, mean, mean_sq):
        var = (mean_sq - mean.pow(2)).clamp_min(0)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.reference_size
        ref, cur = x[:r], x[r:]
        spatial = tuple(range(2, x.dim()))
        ref_dims = (0, *spatial)
        ref_mean = ref.mean(ref_dims, keepdim=True)  # (1, C, 1, …)
        ref_sq = ref.pow(2).mean(ref_dims, keepdim=True)
        # Each example's own statistics (over its pixels; the value itself for features).
        own_mean = cur.mean(spatial, keepdim=True) if spatial else cur
        own_sq = cur.pow(2).mean(spatial, keepdim=True) if spatial else cur.pow(2)
        w = 1.0 / (r + 1)
        mean, mean_sq = w * own_mean + (1 - w) * ref_mean, w * own_sq + (1 - w) * ref_sq
        return torch.cat([self._normalise(ref, ref_mean, ref_sq), self._normalise(cur, mean, mean_sq)])


def _replace_batch_norms(module: nn.Module, reference_size: int) -> int:
    count = 0
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            setattr(module, name, VirtualBatchNorm(child.num_features, reference_size, child.eps))
            count += 1
        else:
            count += _replace_batch_norms(child, reference_size)
    return count


class VirtualBatchNormGenerator(nn.Module):
    def __init__(self, inner: nn.Module, z_dim: int, reference_size: int, seed: int = 0):
        super().__init__()
        _replace_batch_norms(inner, reference_size)  # the rulebook refuses a G without batch norm
        self.inner = inner
        g = torch.Generator().manual_seed(seed + 4242)
        self.register_buffer("z_reference", torch.randn(reference_size, z_dim, generator=g))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.inner(torch.cat([self.z_reference.to(z.dtype), z]))
        return out[self.z_reference.shape[0]:]
