"""gan_lab: a GAN experiment lab — classic GAN variants composed from one Hydra command line."""

from gan_lab.errors import ConfigError

__version__ = "0.1.0"
__all__ = ["ConfigError", "__version__"]
