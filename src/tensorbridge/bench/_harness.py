"""The timing harness: interleaved A/B rounds, ratios per round, and a peak-memory probe.

Two callables are compared in the same process. Each is first calibrated to a batch size that
takes about ``round_s`` seconds; then every round times ``repeats`` batches of A and of B,
interleaved (A B B A A B …: the order alternates so neither side always runs on a warmer cache),
with the garbage collector off. Each side's fastest batch in the round gives its per-call time,
which drops batches another process preempted; the round's ratio is
``(A per call) / (B per call)``. The report is the median ratio and its min–max over the rounds.
Drift in the machine's speed (other processes, frequency scaling) hits both sides of a round
alike, so the ratio is far steadier than either time.

>>> import itertools
>>> clock = itertools.count()  # a fake timer: every reading advances by one
>>> r = compare(lambda: None, lambda: None, rounds=3, round_s=1, timer=lambda: next(clock))
>>> r.ratio
1.0
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["Comparison", "calibrate", "compare", "gc_off", "peak_memory", "time_batch"]

Timer = Callable[[], float]


@contextmanager
def gc_off() -> Iterator[None]:
    """Collect once, then keep the garbage collector off inside the block (restored after)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def time_batch(fn: Callable[[], object], n: int, timer: Timer = time.perf_counter) -> float:
    """Seconds taken by ``n`` calls of ``fn`` (one timer reading before, one after)."""
    repeat = itertools.repeat(None, n)
    start = timer()
    for _ in repeat:
        fn()
    return timer() - start


def calibrate(
    fn: Callable[[], object], round_s: float, timer: Timer = time.perf_counter, max_n: int = 1 << 20
) -> int:
    """The number of calls of ``fn`` that takes at least ``round_s`` seconds (1, 2, 5, 10, ...).

    >>> import itertools
    >>> clock = itertools.count()
    >>> calibrate(lambda: next(clock), round_s=10, timer=lambda: next(clock))
    10
    """
    for n in _steps(max_n):
        if time_batch(fn, n, timer) >= round_s:
            return n
    return max_n


def _steps(max_n: int) -> Iterator[int]:
    n = 1
    while n < max_n:
        for m in (1, 2, 5):
            if n * m < max_n:
                yield n * m
        n *= 10
    yield max_n


@dataclass(frozen=True)
class Comparison:
    """The result of ``compare``: per-round ratios A ÷ B and the per-call times behind them.

    ``a_s`` and ``b_s`` are the median seconds per call of each side; ``n_a`` and ``n_b`` the
    calls per batch.
    """

    ratios: tuple[float, ...]
    a_s: float
    b_s: float
    n_a: int
    n_b: int
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios."""
        return statistics.median(self.ratios)

    @property
    def lo(self) -> float:
        """The smallest per-round ratio."""
        return min(self.ratios)

    @property
    def hi(self) -> float:
        """The largest per-round ratio."""
        return max(self.ratios)


def compare(
    a: Callable[[], object],
    b: Callable[[], object],
    *,
    rounds: int,
    round_s: float,
    timer: Timer = time.perf_counter,
    warmup: int = 2,
    n_a: int | None = None,
    n_b: int | None = None,
    repeats: int = 1,
) -> Comparison:
    """Time ``a`` against ``b`` in ``rounds`` interleaved rounds; ratios are A ÷ B per call.

    ``n_a`` / ``n_b`` fix the batch sizes (otherwise each side is calibrated to ``round_s``);
    each round keeps the fastest of ``repeats`` batches per side.

    >>> import itertools
    >>> clock = itertools.count()
    >>> slow = lambda: next(clock)  # each call advances the fake clock by one more tick
    >>> compare(slow, lambda: None, rounds=4, round_s=1, timer=lambda: next(clock)).ratio
    2.0
    """
    if rounds < 1 or repeats < 1:
        raise ValueError(f"rounds and repeats must be at least 1, not {rounds} and {repeats}")
    for _ in range(warmup):
        a()
        b()
    with gc_off():
        if n_a is None:
            n_a = calibrate(a, round_s, timer)
        if n_b is None:
            n_b = calibrate(b, round_s, timer)
        per_a: list[float] = []
        per_b: list[float] = []
        for r in range(rounds):
            ta = tb = float("inf")
            for j in range(repeats):
                if (r * repeats + j) % 2 == 0:
                    ta = min(ta, time_batch(a, n_a, timer))
                    tb = min(tb, time_batch(b, n_b, timer))
                else:
                    tb = min(tb, time_batch(b, n_b, timer))
                    ta = min(ta, time_batch(a, n_a, timer))
            per_a.append(ta / n_a)
            per_b.append(tb / n_b)
    ratios = tuple(x / y if y > 0 else float("inf") for x, y in zip(per_a, per_b, strict=True))
    return Comparison(
        ratios=ratios,
        a_s=statistics.median(per_a),
        b_s=statistics.median(per_b),
        n_a=n_a,
        n_b=n_b,
    )


# --- peak memory ---------------------------------------------------------------------------


def _proc_status(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux only)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_memory(fn: Callable[[], object]) -> tuple[int, str]:
    """Bytes by which ``fn()`` raised the process's peak memory above its level before the call.

    On Linux this is the RSS high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``
    just before the call), which counts every allocation: NumPy's, PyTorch's, the allocator's.
    Elsewhere it falls back to ``tracemalloc``, which sees NumPy's buffers but not PyTorch's.
    Returns the bytes and the method used (``"rss"`` or ``"tracemalloc"``). The result of
    ``fn()`` is kept alive until the peak has been read, as a caller would keep it.
    """
    gc.collect()
    if _reset_rss_peak():
        before = _proc_status("VmRSS")
        if before is not None:
            out = fn()
            peak = _proc_status("VmHWM")
            del out
            if peak is not None:
                return max(0, peak - before), "rss"
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
        del out
    finally:
        if not tracing:
            tracemalloc.stop()
    return max(0, peak - base), "tracemalloc"
