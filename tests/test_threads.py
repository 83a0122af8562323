"""The CPU thread budget (gan_lab/threads.py): each process gets the cores it may use, shared among the jobs and
ranks beside it, one thread for a model too small to gain from more, and trainer.threads over all of that."""

from __future__ import annotations

import os

import pytest
import torch

from gan_lab import threads
from gan_lab.threads import SMALL_MODEL, ThreadBudget, choose

BIG = 10 * SMALL_MODEL


@pytest.mark.parametrize(("setting", "ranks", "weights", "cores", "jobs", "expected", "words"), [
    (None, 1, BIG, 2, 1, 2, "the 2 usable cores"),
    (None, 1, BIG, 2, 2, 1, "2 usable cores shared by 2 parallel jobs"),
    (None, 2, BIG, 2, 1, 1, "2 usable cores shared by 2 ranks"),
    (None, 2, BIG, 16, 2, 4, "16 usable cores shared by 2 parallel jobs × 2 ranks"),
    (None, 1, BIG, 16, 3, 5, "shared by 3 parallel jobs"),
    (None, 4, BIG, 2, 1, 1, "shared by 4 ranks"),  # never fewer than one
    (None, 1, SMALL_MODEL - 1, 16, 1, 1, f"a model of {SMALL_MODEL - 1:,} weights gains nothing from more"),
    (3, 2, SMALL_MODEL - 1, 2, 2, 3, "trainer.threads"),  # the setting wins, even oversubscribed
])
def test_the_budget_shares_the_cores_out(setting, ranks, weights, cores, jobs, expected, words):
    budget = choose(setting, ranks, weights, cores=cores, jobs=jobs)
    assert budget.threads == expected and words in budget.reason
    assert budget.line().startswith(f"{expected} CPU thread{'s' if expected > 1 else ''} per process (")


def test_outside_a_sweep_there_is_one_job():
    assert threads.parallel_jobs(8) == 1
    assert 1 <= threads.usable_cores() <= (os.cpu_count() or 1)


def test_the_budget_applies_to_the_process_and_its_ranks_and_comes_back(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    with threads.applied(ThreadBudget(1, "test")):
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    assert torch.get_num_threads() == before and "OMP_NUM_THREADS" not in os.environ


def test_a_bad_thread_count_is_refused_naming_the_key():
    from tests.conftest import refused

    assert refused("trainer.threads=0").key == "trainer.threads"
