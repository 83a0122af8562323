"""Shared fixtures: compose the real config tree with overrides, as the command line would."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from gan_lab.config import config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = Path(config_dir())

os.environ.setdefault("WANDB_SILENT", "true")
# Domain classifiers and real-feature statistics are cached here, not in the user's ~/.cache.
os.environ.setdefault("GAN_LAB_CACHE", os.path.join(tempfile.gettempdir(), "gan_lab_test_cache"))
os.environ.setdefault("WANDB_MODE", "offline")


def pytest_configure(config) -> None:
    """Each test process runs on one core of its own: a serial pytest on the first core it may use, xdist's worker
    gwN on core N (modulo the cores). xdist's controller runs no test and is left unpinned: its workers inherit its
    affinity, and a controller pinned to one core would put every worker on that core. The lab's thread budget
    (gan_lab/threads.py) then gives every run, and the ranks and sweep jobs it starts (they inherit the affinity),
    one thread: workers side by side never oversubscribe the cores (with another process busy on a 2-core
    machine, 2 threads trained the mnist5k classifier 9× slower than 1, and small ops ran up to ~100× slower:
    OpenMP barriers), and the weights a run ends with do not depend on how many cores the machine has (the weight
    digests compare them)."""
    if not hasattr(os, "sched_setaffinity"):
        return
    worker = getattr(config, "workerinput", {}).get("workerid")  # "gw3" in an xdist worker
    if worker is None and config.getoption("numprocesses", None):
        return  # xdist's controller (-n 0 runs the tests in this process: it is pinned)
    cores = sorted(os.sched_getaffinity(0))
    index = int(worker[2:]) if worker and worker[2:].isdigit() else 0
    os.sched_setaffinity(0, {cores[index % len(cores)]})
    torch.set_num_threads(1)


def compose_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def run_cli(*args: str, cwd: Path, timeout: int = 600, env: dict | None = None,
            module: str = "gan_lab") -> subprocess.CompletedProcess:
    """``python -m gan_lab ARGS`` (or another ``module``) in a subprocess, the way a user runs it."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def refused(*overrides: str):
    """The ConfigError that composing ``overrides`` into a run's parts raises (the settings, then the rulebook)."""
    from gan_lab.compose import build_components
    from gan_lab.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        build_components(compose_cfg(*overrides))
    return info.value


@pytest.fixture
def tiny():
    """Compose with debug=tiny plus overrides."""
    return lambda *overrides: compose_cfg("debug=tiny", *overrides)


# The final weights of every config file (tests/test_configs.py) and every trick (tests/test_tricks.py) at
# a fixed seed: a refactoring of the training step must leave them bit for bit the same. Recorded with
# GAN_LAB_RECORD_DIGESTS=1; compared only on the machine kind they were recorded on (kernels differ).
DIGESTS = Path(__file__).parent / "data" / "weights_digests.json"


def cpu_model() -> str:
    """The processor's model name (Linux), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_kind() -> str:
    """What decides the float kernels a CPU run uses: torch's build, its threads, the instruction set it
    dispatches to (AVX2 and AVX-512 kernels round differently) and the processor."""
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
            f"{torch.backends.cpu.get_cpu_capability()}, {cpu_model()}")


def state_digest(run_dir: Path) -> str:
    """SHA-256 of a run's last checkpoint's state_dict (parameters and buffers, by name)."""
    state = torch.load(Path(run_dir) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    for name, t in sorted(state["state_dict"].items()):
        h.update(name.encode())
        if isinstance(t, torch.Tensor):
            h.update(t.detach().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        else:  # a module's extra state (e.g. a counter)
            h.update(json.dumps(t, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def weight_digests():
    """``check(case, run_dir)``: the run's final weights equal the ones recorded for ``case`` on this machine kind.
    The book keeps one set per machine kind (kernels differ between them); a case recorded only on other kinds is
    skipped here, a case recorded nowhere fails."""
    record = os.environ.get("GAN_LAB_RECORD_DIGESTS") == "1"
    book = json.loads(DIGESTS.read_text())["machines"] if DIGESTS.is_file() else {}
    here = book.get(machine_kind(), {})
    recorded: dict[str, str] = {}  # what this process recorded

    def check(case: str, run_dir: Path) -> None:
        digest = state_digest(run_dir)
        if record:
            recorded[case] = digest
        elif case in here:
            assert digest == here[case], f"{case}: the final weights changed"
        elif any(case in runs for runs in book.values()):
            pytest.skip(f"weight digest of {case} not compared: recorded only on other machine kinds "
                        f"({'; '.join(kind for kind, runs in book.items() if case in runs)}; this one is "
                        f"{machine_kind()})")
        else:
            pytest.fail(f"{case}: no weight digest recorded (record with GAN_LAB_RECORD_DIGESTS=1)")

    yield check
    if record:  # merged into this machine kind's set under a lock: xdist's workers each record their own cases
        import fcntl

        DIGESTS.parent.mkdir(exist_ok=True)
        with open(Path(tempfile.gettempdir()) / "gan_lab_weights_digests.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            stored = json.loads(DIGESTS.read_text())["machines"] if DIGESTS.is_file() else {}
            stored[machine_kind()] = {**stored.get(machine_kind(), {}), **recorded}
            DIGESTS.write_text(json.dumps({"machines": stored}, indent=1, sort_keys=True) + "\n")


def interrupted_then_resumed(args: list[str], run_dir: Path, at: int) -> dict:
    """Train ``args`` into ``run_dir``, stopped by Ctrl-C when iteration ``at`` is about to start (its
    checkpoints up to ``at`` written), then resume it there; return the resumed run's summary."""
    import gan_lab.systems.gan as gan_mod
    from gan_lab.train import train

    original = gan_mod.GAN.on_train_batch_start

    def interrupt(self, batch, batch_idx):
        if self.iteration == at:
            raise KeyboardInterrupt  # as Ctrl-C would, mid-run
        return original(self, batch, batch_idx)

    gan_mod.GAN.on_train_batch_start = interrupt
    try:
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            train(compose_cfg(*args), run_dir)
    finally:
        gan_mod.GAN.on_train_batch_start = original
    return train(compose_cfg(*args, f"resume={run_dir}"), None)



def signalled_once_checkpointed(args: list[str], run_dir: Path, signum: int, cwd: Path,
                                timeout: int = 120) -> subprocess.CompletedProcess:
    """``python -m gan_lab *args`` sent ``signum`` as soon as ``run_dir`` holds a checkpoint, as a user's Ctrl-C or
    a scheduler's SIGTERM would arrive mid-run; its exit status and output."""
    import signal
    import time

    def as_from_a_terminal() -> None:  # a suite started in the background (cmd &) inherits SIGINT ignored, and
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python keeps that: the child gets a terminal's default

    proc = subprocess.Popen([sys.executable, "-m", "gan_lab", *args], cwd=cwd,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=as_from_a_terminal)
    ckpt = Path(run_dir) / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + timeout
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # it went on: end it, so no run outlives the test
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{signal.Signals(signum).name} did not stop the run within {timeout} s:\n"
                             f"{err[-2000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
