"""Where the image sets live on disk, and the ConfigErrors that every reader raises about missing or bad files.

``<data_dir>`` is ``paths.data_dir`` (``$GAN_LAB_DATA_DIR``, default ``./data``); :func:`resolve_dir` takes a
relative one from the current directory and expands ``~``. The errors name that key, so the message says
what to change.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from gan_lab.errors import ConfigError

DATA_DIR_KEY = "paths.data_dir"

# the settings the readers share
DataDir = Annotated[str | os.PathLike, "the folder holding the sets in torchvision's layout (paths.data_dir: "
                                       "$GAN_LAB_DATA_DIR, default ./data)"]
Download = Annotated[bool, "fetch missing files (torchvision's mirror, MD5-checked); needs a network"]
InMemory = Annotated[bool | Literal["auto"], "true | false (decode each minibatch from disk) | auto (in memory "
                                             "when <= 2 GiB as float32)"]


def resolve_dir(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded, made absolute from the current directory."""
    return Path(os.path.expanduser(os.fspath(path))).absolute()


def _missing(root: Path, what: str, expected: Sequence[str], fetchable: bool, reason: str = "") -> ConfigError:
    how = "dataset.download=true fetches them where a network exists; or " if fetchable else "Or "
    return ConfigError(DATA_DIR_KEY, str(root), f"a folder holding {what} in torchvision's layout",
                       f"{reason}Expected: {'; '.join(expected)}. {how}point GAN_LAB_DATA_DIR=... or "
                       "paths.data_dir=... at a folder that has them.")


def _bad_file(root: Path, what: str, why: str) -> ConfigError:
    return ConfigError(DATA_DIR_KEY, str(root), f"a folder holding {what} in torchvision's layout", why)
