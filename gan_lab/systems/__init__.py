"""LightningModules: the alternating D/G procedure. Variants override only the step that differs."""

from gan_lab.systems.gan import GAN

__all__ = ["GAN"]
