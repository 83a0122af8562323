"""Lipschitz constraints and penalties on D: things that need D or its weights, apart from losses."""

from gan_lab.regularizers.base import Regularizer
from gan_lab.regularizers.clip import WeightClip
from gan_lab.regularizers.gp import GradientPenalty
from gan_lab.regularizers.none import NoRegularizer
from gan_lab.regularizers.r1 import R1
from gan_lab.regularizers.sn import SpectralNorm

__all__ = ["Regularizer", "NoRegularizer", "WeightClip", "GradientPenalty", "R1", "SpectralNorm"]
