"""Progress counted in generator iterations, with losses and time left: a rich bar on a terminal, plain log lines
everywhere else (a file, a SLURM job's output), where a bar would draw nothing until the end."""

from __future__ import annotations

import math
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from gan_lab.metrics import registry
from gan_lab.reporting import shown


class IterationProgressBar(RichProgressBar):
    resumed_at = 0  # a resumed run's bar counts the iterations left; its title says where it started

    def __init__(self, note: str = "", **kwargs):
        super().__init__(**kwargs)
        self.note = note  # said once, above the bar (the thread budget)

    def on_train_start(self, trainer, pl_module) -> None:
        self.resumed_at = int(getattr(pl_module, "iteration", 0))
        if self.note and trainer.is_global_zero:
            print(f"gan_lab: {self.note}", flush=True)
        super().on_train_start(trainer, pl_module)

    def _get_train_description(self, current_epoch: int) -> str:
        return f"gan_lab iterations (resumed at {self.resumed_at})" if self.resumed_at else "gan_lab iterations"

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        items.update(shown(getattr(pl_module, "history", [])))
        return items


def _duration(seconds: float) -> str:
    """A short duration: 45s, 3m05s, 2h07m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def latest_measurement(history: list[dict[str, float]]) -> tuple[str, float] | None:
    """The newest measurement to quote in a progress line: of the newest row that has one, the first headline
    metric in the registry's order (an FID, else the toy mode count, else W1), else its first measurement."""
    for row in reversed(history):
        measured = [k for k in row if registry.is_measurement(k) and isinstance(row[k], (int, float))]
        if measured:
            key = (registry.headline(measured) or measured)[0]
            return key, row[key]
    return None


class ProgressLines(L.Callback):
    """Progress as plain log lines, for output that is not a terminal (a file, a SLURM log): one line every
    ``every`` iterations and after each evaluation, with iteration/total, it/s, time left, the losses, D(x),
    D(G(z)) and the newest headline metric. Rank 0 prints; nothing is drawn."""

    def __init__(self, every: int, stream=None, note: str = ""):
        self.every, self.stream, self.note = every, stream, note  # note: said in the first line (the thread budget)
        self._start: tuple[float, int] | None = None
        self._seen_rows = 0

    def on_train_start(self, trainer, module) -> None:
        self._start = (time.perf_counter(), module.iteration)
        self._seen_rows = len(module.history)
        if trainer.is_global_zero:
            where = f", resumed at {module.iteration}" if module.iteration else ""
            note = f"; {self.note}" if self.note else ""
            self._print(f"gan_lab: training {module.iterations} iterations{where}; a progress line every "
                        f"{self.every}{note}")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero:
            return
        rows = module.history[self._seen_rows:]
        self._seen_rows = len(module.history)
        evaluated = any(registry.is_measurement(k) for row in rows for k in row)
        if module.iteration % self.every == 0 or evaluated:
            self._print(self.line(trainer, module))

    def line(self, trainer, module) -> str:
        total, i = module.iterations, module.iteration
        started, first = self._start
        elapsed = time.perf_counter() - started
        rate = (i - first) / elapsed if elapsed > 0 else 0.0
        left = (total - i) / rate if rate > 0 else float("nan")
        parts = [f"iteration {i}/{total} ({100 * i / max(total, 1):.0f}%)", f"{rate:.1f} it/s",
                 f"{_duration(left) if math.isfinite(left) else '?'} left"]
        values = shown(module.history)
        if values:
            parts.append(" ".join(f"{k} {v:.4g}" for k, v in values.items()))
        best = latest_measurement(module.history)
        if best is not None:
            parts.append(f"{best[0]} {best[1]:.4g}")
        return "gan_lab: " + " | ".join(parts)

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)
