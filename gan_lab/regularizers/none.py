"""No constraint on D (the DCGAN and minimax settings)."""

from gan_lab.regularizers.base import Regularizer


class NoRegularizer(Regularizer):
    name = "none"
