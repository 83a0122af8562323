"""Data sources (toy laws and image sets) and the datamodule that draws Algorithm 1's minibatches."""

from gan_lab.data.base import DataSpec, Source
from gan_lab.data.module import GANDataModule, IterationBatchSampler

__all__ = ["DataSpec", "Source", "GANDataModule", "IterationBatchSampler"]
