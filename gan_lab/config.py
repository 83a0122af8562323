"""Where the config tree is, and the resolvers it uses. Imported by everything that composes a config
(the entrypoint, the run-folder commands, the tests); imports nothing of the lab's."""

from __future__ import annotations

import hashlib
from pathlib import Path

from omegaconf import OmegaConf


def config_dir() -> str:
    """conf/ ships inside the wheel as gan_lab/conf; in a source checkout it sits beside gan_lab/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"gan_lab's config tree was not found next to {here}")


# hydra.run.dir: a resumed run (resume=<folder>) writes into its own folder, a new run into a fresh one
OmegaConf.register_new_resolver("gan_lab_run_dir", lambda resume, fresh: resume or fresh, replace=True)


def job_folder_name(num, overrides: str, limit: int = 160) -> str:
    """A sweep job's folder: ``<job number>_<overrides>``, shortened with a hash of the whole when the
    overrides would pass file systems' 255-byte limit on a name (a long sweep line)."""
    name = f"{num}_{overrides}" if overrides else str(num)
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha1(overrides.encode()).hexdigest()[:10]
    head = name.encode()[: limit - 12].decode(errors="ignore")
    return f"{head}~{digest}"


OmegaConf.register_new_resolver("gan_lab_job_folder", job_folder_name, replace=True)
