"""The order of the players' updates within one generator iteration (``train.simultaneous``).

``Alternating`` is Algorithm 1 (Goodfellow 2014): D takes its k updates, then G takes its update against the D
just updated. ``Simultaneous`` takes both players' gradients at the same state (θ_D, θ_G) and applies both, as
simultaneous gradient descent and the Unrolled GAN reference code do (Metz et al. 2017; one ``sess.run`` of both
train ops): G's gradient is computed first and held aside while D takes its k updates against the unchanged G
(fresh real minibatches and z, as always), then G steps with it. With an unrolled copy of D (``tricks.unroll``)
the copy starts from the same, not-yet-updated D.

A schedule is asked twice per iteration: :meth:`iterate` orders the two kinds of update, and every G update's
frame calls :meth:`before_g_step` between G's backward and G's optimiser step.
"""

from __future__ import annotations

from collections.abc import Callable


class Alternating:
    simultaneous = False

    def iterate(self, d_updates: Callable[[], None], g_update: Callable[[], None]) -> None:
        d_updates()
        g_update()

    def before_g_step(self, optimizer) -> None:
        pass


class Simultaneous(Alternating):
    simultaneous = True

    def __init__(self):
        self.pending: Callable[[], None] | None = None  # this iteration's D updates, run inside G's update

    def iterate(self, d_updates: Callable[[], None], g_update: Callable[[], None]) -> None:
        self.pending = d_updates
        try:
            g_update()
        finally:
            pending, self.pending = self.pending, None
        if pending is not None:
            raise RuntimeError("the G step did not go through GAN.update_generator: D's updates of this iteration "
                               "never ran (train.simultaneous)")

    def before_g_step(self, optimizer) -> None:
        """D's updates run while G's gradient waits, held aside: a D update leaving a gradient on G cannot change
        G's step."""
        if self.pending is None:
            return
        d_updates, self.pending = self.pending, None
        params = [p for group in optimizer.param_groups for p in group["params"]]
        held = [p.grad for p in params]
        for p in params:
            p.grad = None
        d_updates()
        for p, grad in zip(params, held):
            p.grad = grad


def schedule(simultaneous: bool) -> Alternating:
    return Simultaneous() if simultaneous else Alternating()
