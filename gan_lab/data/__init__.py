"""Data sources (toy laws and image sets) and the datamodule that draws Algorithm 1's minibatches."""

from gan_lab.data.base import DataSpec, Source

__all__ = ["DataSpec", "Source", "GANDataModule", "IterationBatchSampler"]


def __getattr__(name: str):
    """The datamodule on first use: it imports Lightning, which a data set's reader (and a command's error) does
    not need."""
    if name in ("GANDataModule", "IterationBatchSampler"):
        from gan_lab.data import module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
