"""Rank health in multi-process runs: what each rank is doing, and who is to blame when a run stops.

Each rank keeps a *phase* ("training, iteration 12", "measuring at iteration 500", "waiting for the other
ranks: gathering samples"). Setting it is a few attribute writes; a daemon thread copies it to
``<run folder>/.ranks/rank<r>.json`` within a quarter of a second, and at least once a second (the
heartbeat). When a collective fails (a peer died, or stalled past ``trainer.timeout_minutes``),
:func:`diagnose` reads those files and the exit codes of the child processes and names the rank and
what it was doing. The files stay in the run folder: each rank's last word.

Rank 0 launches ranks ≥ 1 as child processes (Lightning's launcher). :func:`watch_children` replaces
Lightning's observer, which SIGKILLs the main process when a child fails — the main process is the
whole sweep under ``-m``. Ours records the child's exit and, if the main thread has not noticed within
a few seconds (it is stuck outside any collective: it is the stalled rank), interrupts it with
:class:`PeerFailed`; the run then stops with its one-line error and the sweep goes on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RANK_FAILURE_STATUS = 4  # exit status of a run stopped by a dead or stalled rank (2: bad setting, 3: diverged)
INTERRUPT = signal.SIGUSR2  # SIGUSR1 is SLURM's requeue signal in Lightning
GRACE_S = 3.0  # how long a failed child may go unnoticed before the main thread is interrupted
LAST_RESORT_S = 60.0  # a main thread that does not unwind after the interrupt: the process exits itself


class RankFailure(RuntimeError):
    """A multi-process run stopped because a rank died or stalled; ``reason`` names it."""

    def __init__(self, reason: str, iteration: int | None = None, rank: int = 0):
        self.reason, self.iteration, self.rank = reason, iteration, rank
        super().__init__(reason)


class PeerFailed(RuntimeError):
    """Raised in rank 0's main thread when a child rank exited with an error and rank 0 did not notice."""


class RankMonitor:
    """This process's phase and heartbeat, written to ``<run_dir>/.ranks/rank<r>.json``."""

    def __init__(self, run_dir: Path, rank: int, interval: float = 0.25, heartbeat: float = 1.0):
        self.dir = Path(run_dir) / ".ranks"
        self.rank, self.interval, self.heartbeat = rank, interval, heartbeat
        self.phase, self.since, self.waiting = "starting", time.time(), False
        self.state, self.error = "running", None
        self.quiet = False  # True once this rank handles a failure or is finishing: no interrupts
        self.written: str | None = None  # the phase on disk
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"gan_lab-rank{rank}-heartbeat", daemon=True)
        self._parent = int(os.environ.get("GAN_LAB_PARENT_PID", "0") or 0) if rank > 0 else 0

    @property
    def path(self) -> Path:
        return self.dir / f"rank{self.rank}.json"

    def set(self, phase: str, waiting: bool = False) -> None:
        if phase != self.phase:
            self.phase, self.since, self.waiting = phase, time.time(), waiting

    def record(self) -> dict:
        return {"rank": self.rank, "pid": os.getpid(), "host": socket.gethostname(), "phase": self.phase,
                "since": self.since, "waiting": self.waiting, "heartbeat": time.time(), "state": self.state,
                "error": self.error}

    def write(self) -> None:
        with self._lock:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                record = self.record()
                tmp = self.path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(record))
                os.replace(tmp, self.path)
                self.written = record["phase"]
            except OSError:
                pass  # a full or vanished disk must not kill training; the diagnosis then says less

    def restore(self, phase: str, since: float, waiting: bool) -> None:
        """Back to the phase before a block; on disk at once if the block's phase had reached the disk
        (a rank that dies just after it must not be seen still inside it)."""
        inner = self.phase
        self.phase, self.since, self.waiting = phase, since, waiting
        if self.written == inner:
            self.write()

    def _loop(self) -> None:
        written, last = None, 0.0
        while not self._stop.wait(self.interval):  # a phase change is on disk within `interval`
            now = time.monotonic()
            if (self.phase, self.state) != written or now - last >= self.heartbeat:
                written, last = (self.phase, self.state), now
                self.write()
            if self._parent and os.getppid() != self._parent:  # rank 0 is gone: nobody will ever meet us
                self.state, self.error = "failed", "rank 0 exited; this rank stopped on its own"
                self.write()
                os._exit(RANK_FAILURE_STATUS)

    def start(self) -> RankMonitor:
        self.write()
        self._thread.start()
        return self

    def stop(self, state: str = "finished", error: str | None = None) -> None:
        self.state, self.error = state, error
        if state == "finished":
            self.set("finished")
        self._stop.set()
        self.write()


_monitor: RankMonitor | None = None
_children: list[subprocess.Popen] = []


def current() -> RankMonitor | None:
    return _monitor


def at_iteration(iteration: int) -> None:
    """The training phase of one generator iteration: called once per iteration, so kept cheap."""
    if _monitor is not None and not _monitor.waiting:
        entering = not _monitor.phase.startswith("training")
        _monitor.phase, _monitor.since = f"training, iteration {iteration}", time.time()
        if entering:  # on disk at once: a rank that dies in its first iterations is still seen training
            _monitor.write()


@contextmanager
def phase(name: str, waiting: bool = False) -> Iterator[None]:
    """``name`` as the phase for the block, then back to the phase before it. ``waiting``: the block is a
    collective, where this rank waits for the others (it is not the one to blame if it times out)."""
    if _monitor is None:
        yield
        return
    before, since, was = _monitor.phase, _monitor.since, _monitor.waiting
    _monitor.set(f"waiting for the other ranks ({name}) during {before}" if waiting else name, waiting=waiting)
    try:
        yield
    finally:
        _monitor.restore(before, since, was)


def waiting(what: str):
    """Inside a collective (see :func:`phase`)."""
    return phase(what, waiting=True)


@contextmanager
def monitored(run_dir: Path, rank: int) -> Iterator[RankMonitor]:
    """Monitor this rank for the duration of one run (one sweep job); rank 0 also catches the interrupt."""
    global _monitor
    _monitor = RankMonitor(run_dir, rank).start()
    old_handler = None
    on_main = threading.current_thread() is threading.main_thread()
    if on_main:
        old_handler = signal.signal(INTERRUPT, _interrupted)
    if rank == 0:
        os.environ["GAN_LAB_PARENT_PID"] = str(os.getpid())  # children stop if this process disappears
    try:
        yield _monitor
    finally:
        if _monitor.state == "running":
            _monitor.stop()
        _monitor = None
        _children.clear()
        if on_main:
            signal.signal(INTERRUPT, old_handler if old_handler is not None else signal.SIG_DFL)


def _interrupted(signum, frame) -> None:
    if _monitor is not None and not _monitor.quiet:
        failed = [(i + 1, p.returncode) for i, p in enumerate(_children) if p.returncode not in (None, 0)]
        raise PeerFailed(f"child rank {failed[0][0] if failed else '?'} exited with status "
                         f"{failed[0][1] if failed else '?'}")


def watch_children(procs: list[subprocess.Popen]) -> None:
    """Lightning's ``_launch_process_observer`` replacement (see the module docstring)."""
    _children[:] = procs
    main = threading.main_thread().ident
    monitor = _monitor

    def loop() -> None:
        noticed: float | None = None
        interrupted: float | None = None
        while monitor is not None and monitor is _monitor:
            time.sleep(0.5)
            codes = [p.poll() for p in procs]
            if all(c == 0 for c in codes):
                return
            if not any(c not in (None, 0) for c in codes) or monitor.quiet:
                noticed = interrupted = None
                continue
            now = time.monotonic()
            noticed = noticed or now
            if interrupted is None and now - noticed > GRACE_S:
                signal.pthread_kill(main, INTERRUPT)
                interrupted = now
            elif interrupted is not None and now - interrupted > LAST_RESORT_S:
                _last_resort(monitor, procs)

    threading.Thread(target=loop, name="gan_lab-child-watch", daemon=True).start()


def _last_resort(monitor: RankMonitor, procs: list[subprocess.Popen]) -> None:
    """Rank 0's main thread is stuck where no exception reaches it: say why, then end the process."""
    reason = diagnose(monitor.dir.parent, 1 + len(procs), 0, interrupted=True)
    monitor.stop("failed", reason)
    print(f"gan_lab: error: {reason}; the process could not stop cleanly and exits now", flush=True)
    os._exit(RANK_FAILURE_STATUS)


def kill_children() -> None:
    """SIGKILL every child rank (a stalled one ignores SIGTERM) and reap it."""
    for p in _children:
        if p.poll() is None:
            p.kill()
    for p in _children:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(record: dict, code: int | None) -> bool:
    if code is not None:
        return False
    if record.get("host") == socket.gethostname():
        try:
            os.kill(int(record["pid"]), 0)
        except (ProcessLookupError, PermissionError, ValueError):
            return False
        return True
    return time.time() - float(record.get("heartbeat", 0)) < 15.0  # another node: by its heartbeat


def _exit_text(code: int | None) -> str:
    if code is None:
        return "stopped responding"
    if code < 0:
        try:
            return f"died (killed by {signal.Signals(-code).name})"
        except ValueError:
            return f"died (signal {-code})"
    return f"exited with status {code}"


def diagnose(run_dir: Path, world: int, self_rank: int, interrupted: bool = False,
             timeout_minutes: float | None = None) -> str:
    """Which rank stopped the run, and what it was doing, from the ranks' status files and the child
    processes' exit codes. ``interrupted``: this rank was stopped from outside (it did not see a
    collective fail), so it may itself be the stalled one. ``timeout_minutes``: named with a stall."""
    now = time.time()
    records = {r: _read(Path(run_dir) / ".ranks" / f"rank{r}.json") for r in range(world)}
    if _monitor is not None and self_rank in records:
        records[self_rank] = _monitor.record()
    codes = {i + 1: p.poll() for i, p in enumerate(_children)}
    # 1. a rank that died without reporting a failure of its own (killed, crashed)
    for r in range(world):
        rec = records.get(r)
        if r == self_rank or rec is None:
            continue
        code = codes.get(r)
        if not _alive(rec, code) and rec.get("state") != "failed":
            return f"rank {r} {_exit_text(code)} while {rec['phase']}"
    # 2. a live rank that was not waiting for the others: the oldest such phase is the stall
    candidates = []
    for r, rec in records.items():
        if rec is None or rec.get("state") == "failed" or rec.get("waiting"):
            continue
        if r == self_rank and not interrupted:
            continue  # this rank saw the collective time out: it was waiting, whatever its phase says
        candidates.append((float(rec["since"]), r, rec))
    if candidates:
        since, r, rec = min(candidates)
        limit = f"; collectives time out after trainer.timeout_minutes={timeout_minutes}" if timeout_minutes else ""
        return f"rank {r} stalled while {rec['phase']} (no progress for {now - since:.0f} s){limit}"
    failed = [(r, rec) for r, rec in records.items() if rec and rec.get("state") == "failed" and r != self_rank]
    if failed:
        r, rec = failed[0]
        return f"rank {r} stopped: {rec.get('error') or 'failed'}"
    missing = [r for r, rec in records.items() if rec is None]
    if missing:
        return f"rank {missing[0]} never reported (it did not start, or cannot write to {run_dir})"
    return "a collective operation between the ranks failed"
