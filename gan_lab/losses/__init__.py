"""Adversarial objectives as pure functions of logits (docs/science.md, "Adversarial losses").

Convention: v = V(x) is D's raw output; every method returns the batch mean of the quantity the
player *minimises*. ``log σ(v) = -softplus(-v)`` keeps the sigmoid losses stable.
"""

from gan_lab.losses.base import GANLoss
from gan_lab.losses.hinge import Hinge
from gan_lab.losses.lsgan import LeastSquares
from gan_lab.losses.minimax import Minimax
from gan_lab.losses.ns import NonSaturating
from gan_lab.losses.wasserstein import Wasserstein

__all__ = ["GANLoss", "Hinge", "LeastSquares", "Minimax", "NonSaturating", "Wasserstein"]
