"""After a multi-process run, check that every rank ended with the same weights (bit for bit)."""

from __future__ import annotations

import hashlib

import lightning as L
import torch
import torch.distributed as dist


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in state_dict order."""
    h = hashlib.sha256()
    for name, p in module.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class WeightSyncCheck(L.Callback):
    """Fills ``result`` with each rank's digest; a desync is a bug in the distributed path."""

    def __init__(self):
        self.result: dict | None = None

    def on_train_end(self, trainer, module) -> None:
        digest = weights_digest(module)
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            digests: list = [None] * trainer.world_size
            dist.all_gather_object(digests, digest)
        else:
            digests = [digest]
        self.result = {"world_size": trainer.world_size, "param_sha256": digests,
                       "in_sync": len(set(digests)) == 1}
