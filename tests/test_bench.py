"""Smoke tests of the benchmark suite: the harness's arithmetic on fake timers, and the command's
output shape. No test here asserts how long anything takes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tensorbridge.bench import main, run_cases
from tensorbridge.bench._case import Case, Config, Skip, Target
from tensorbridge.bench._harness import Comparison, calibrate, compare, peak_memory


class FakeClock:
    """A timer that only moves when a fake workload advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def work(self, ticks: float, log: list[str] | None = None, name: str = ""):
        def fn() -> None:
            self.now += ticks
            if log is not None:
                log.append(name)

        return fn


def test_compare_ratio_is_per_call_quotient():
    """Per-round ratios are A's per-call time over B's, whatever each side's batch size."""
    clock = FakeClock()
    c = compare(clock.work(3), clock.work(1), rounds=5, round_s=10, timer=clock)
    assert c.ratios == (3.0,) * 5
    assert (c.ratio, c.lo, c.hi) == (3.0, 3.0, 3.0)
    assert (c.a_s, c.b_s) == (3.0, 1.0)
    assert (c.n_a, c.n_b) == (5, 10)


def test_compare_reports_median_and_spread():
    """The reported ratio is the median of the rounds, with their min and max."""
    c = Comparison(ratios=(1.0, 4.0, 2.0, 3.0, 9.0), a_s=1.0, b_s=1.0, n_a=1, n_b=1)
    assert (c.ratio, c.lo, c.hi) == (3.0, 1.0, 9.0)


def test_compare_interleaves_and_alternates_order():
    """Rounds interleave the two sides, alternating which one goes first (A B, B A, ...)."""
    clock, log = FakeClock(), []
    compare(
        clock.work(1, log, "a"),
        clock.work(1, log, "b"),
        rounds=4,
        round_s=1,
        timer=clock,
        warmup=0,
        n_a=1,
        n_b=1,
    )
    assert "".join(log) == "abbaabba"


def test_compare_keeps_each_sides_fastest_batch_per_round():
    """With several batches per round, a round's ratio uses each side's fastest batch."""
    clock = FakeClock()
    costs = iter([5.0, 1.0, 1.0, 2.0])  # A's batches: 5 then 2; B's: 1 then 1

    def a() -> None:
        clock.now += next(costs)

    def b() -> None:
        clock.now += next(costs)

    c = compare(a, b, rounds=1, round_s=1, timer=clock, warmup=0, n_a=1, n_b=1, repeats=2)
    assert c.ratios == (2.0,)


def test_compare_rejects_zero_rounds():
    """Asking for no rounds is an error, not an empty result."""
    clock = FakeClock()
    with pytest.raises(ValueError, match="rounds"):
        compare(clock.work(1), clock.work(1), rounds=0, round_s=1, timer=clock)


def test_calibrate_grows_the_batch_until_a_round_is_long_enough():
    """Calibration picks the first batch size in 1, 2, 5, 10, ... reaching the round time."""
    clock = FakeClock()
    assert calibrate(clock.work(1), round_s=7, timer=clock) == 10
    assert calibrate(clock.work(100), round_s=7, timer=clock) == 1


def test_target_directions():
    """A ``<=`` target passes at or below its value, a ``>=`` target at or above it."""
    assert Target("<=", 1.3).met(1.3) and not Target("<=", 1.3).met(1.31)
    assert Target(">=", 4.0).met(4.5) and not Target(">=", 4.0).met(3.9)
    assert str(Target("<=", 0.7)) == "≤ 0.70×"


def test_peak_memory_sees_a_new_array():
    """The peak-memory probe counts a freshly written 16 MiB array (at least its size)."""
    extra, method = peak_memory(lambda: np.ones(16 << 20, dtype=np.uint8))
    assert method in ("rss", "tracemalloc")
    assert extra >= 16 << 20


def test_run_cases_turns_skips_and_errors_into_results():
    """A case that skips or raises is reported as SKIP or ERROR; the others still run."""

    def skip(cfg: Config) -> Comparison:
        raise Skip("peer not installed")

    def boom(cfg: Config) -> Comparison:
        raise RuntimeError("broken")

    def fine(cfg: Config) -> Comparison:
        return Comparison(ratios=(0.5,), a_s=1.0, b_s=2.0, n_a=1, n_b=1)

    def miss(cfg: Config) -> Comparison:
        return Comparison(ratios=(2.0,), a_s=2.0, b_s=1.0, n_a=1, n_b=1)

    cases = [Case("g", n, "ours", "idiom", Target("<=", 1.0), f) for n, f in
             [("skip", skip), ("boom", boom), ("fine", fine), ("miss", miss)]]  # fmt: skip
    results = run_cases(cases, Config())
    assert [r.status for r in results] == ["SKIP", "ERROR", "PASS", "MISS"]
    assert "broken" in results[1].note


def test_main_quick_json(capsys):
    """``--quick --filter ... --json`` runs the matching cases and prints JSON with every key."""
    assert main(["--quick", "--rounds", "2", "--filter", "to_torch(a) vs", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"machine", "quick", "rounds", "summary", "cases"}
    assert doc["quick"] is True and doc["rounds"] == 2
    assert len(doc["cases"]) == 1
    case = doc["cases"][0]
    assert set(case) >= {"group", "name", "target", "ratio", "min", "max", "status", "note"}
    assert case["status"] in ("PASS", "MISS")
    assert case["min"] <= case["ratio"] <= case["max"]


def test_main_markdown_table(capsys):
    """``--markdown`` prints a Markdown table with one row per case."""
    assert main(["--quick", "--rounds", "2", "--filter", "leaf: to_numpy", "--markdown"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| leaf")]
    assert len(rows) == 2


def test_main_unknown_filter_is_a_usage_error(capsys):
    """A filter that matches no case exits 2 with one line on stderr."""
    assert main(["--filter", "no such case"]) == 2
    assert "no case matches" in capsys.readouterr().err


def test_quick_mode_skips_the_gibibyte_buffer():
    """``--quick`` sizes the O(1) cases at 64 MiB instead of 1 GiB, and uses fewer rounds."""
    from tensorbridge.bench import config

    quick, full = config(quick=True), config()
    assert quick.big_bytes == 64 << 20 and full.big_bytes == 1 << 30
    assert quick.rounds < full.rounds
    assert config(rounds=3).rounds == 3
