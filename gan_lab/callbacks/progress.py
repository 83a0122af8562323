"""A rich progress bar counted in generator iterations, with losses and time left."""

from lightning.pytorch.callbacks import RichProgressBar


class IterationProgressBar(RichProgressBar):
    def _get_train_description(self, current_epoch: int) -> str:
        return "gan_lab iterations"

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
