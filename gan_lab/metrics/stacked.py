"""Stacked MNIST's mode metric (Metz et al. 2017; VEEGAN; PacGAN Table 2), from a 1-channel classifier.

A generated 3-channel image's mode is the triple of classes the mnist5k domain classifier gives its three
channels, each read as a 1-channel image. Over n samples (26,000 in PacGAN's protocol), with q the
histogram of their modes over the 1,000 triples:

- modes covered = #{m : q_m > 0} (out of 1,000);
- reverse KL    = KL(q ‖ uniform) = Σ_m q_m log(1000 q_m) in nats: 0 when every triple is equally
  frequent, log 1000 ≈ 6.91 when every sample has the same one.

:class:`PerChannel` makes this the class coverage of an ordinary extractor: its logits are the joint
log-probabilities of the 1,000 triples, whose argmax is the triple of the channels' argmaxes, so
``ImageMetrics`` computes FID/KID/IS, the modes and the reverse KL from one pass over the samples.
"""

from __future__ import annotations

import torch
from torch import nn

DEFINITION = ("mode of an image = the triple of classes the classifier gives its channels, each read as a 1-channel "
              "image, m = 100·c_R + 10·c_G + c_B; stacked_modes = modes some sample has (out of 1,000), "
              "stacked_reverse_kl = KL(q ‖ uniform) = Σ q log(1000 q) in nats for q the samples' mode histogram "
              "(Metz 2017; VEEGAN; PacGAN Table 2, there on 26,000 samples). The lab stacks digits drawn from the "
              "~4,500 mnist5k training digits and reads them with the mnist5k classifier; the reference stacks all "
              "70,000 MNIST digits and reads them with a CNN trained on MNIST")


class PerChannel(nn.Module):
    """A 1-channel classifier read on each channel of (N, C, H, W) images: an extractor for ``ImageMetrics``.

    ``features_and_logits`` gives the channels' d-dim features side by side, (N, C·d), for FID/KID and
    precision/recall, and the joint log-probabilities log p(c_1) + … + log p(c_C) of the K^C class tuples,
    (N, K^C), the first channel the most significant digit (``gan_lab.data.stacked.mode_of``), for IS and
    the mode coverage. The channels are independent given the image, since the classifier sees one at a time.
    """

    counts_classes = True
    coverage_names = ("stacked_modes", "stacked_reverse_kl")  # the class coverage under the literature's names

    def __init__(self, classifier: nn.Module, channels: int = 3):
        super().__init__()
        self.classifier, self.channels = classifier, channels
        self.num_features = channels * classifier.num_features
        self.num_classes = classifier.num_classes**channels
        self.description = (f"the {classifier.num_features}-d features of each of the {channels} channels side by "
                            f"side ({self.num_features}-d) and the joint log-probabilities of the {self.num_classes:,} "
                            "class tuples")
        self.definition = DEFINITION  # ImageMetrics.describe adds it to the protocol

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = x.shape
        if c != self.channels:
            raise ValueError(f"expected images with {self.channels} channels, got shape {tuple(x.shape)}")
        feats, logits = self.classifier.features_and_logits(x.reshape(n * c, 1, h, w))  # one channel per row
        log_p = logits.log_softmax(1).view(n, c, -1)  # (N, C, K)
        joint = log_p[:, 0]
        for ch in range(1, c):  # (N, K^ch) → (N, K^(ch+1)), earlier channels major
            joint = (joint[:, :, None] + log_p[:, ch, None, :]).flatten(1)
        return feats.reshape(n, -1), joint
