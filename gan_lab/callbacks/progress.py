"""A rich progress bar counted in generator iterations, with losses and time left."""

from lightning.pytorch.callbacks import RichProgressBar

from gan_lab.reporting import shown


class IterationProgressBar(RichProgressBar):
    resumed_at = 0  # a resumed run's bar counts the iterations left; its title says where it started

    def on_train_start(self, trainer, pl_module) -> None:
        self.resumed_at = int(getattr(pl_module, "iteration", 0))
        super().on_train_start(trainer, pl_module)

    def _get_train_description(self, current_epoch: int) -> str:
        return f"gan_lab iterations (resumed at {self.resumed_at})" if self.resumed_at else "gan_lab iterations"

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        items.update(shown(getattr(pl_module, "history", [])))
        return items
