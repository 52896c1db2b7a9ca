"""``tensorbridge bench``: the benchmark suite, as ratios against the hand-written idioms.

Every case times tensorbridge against the idiom it replaces in the same process, interleaved
(see ``_harness``), and reports the median per-round ratio, its min–max, and whether it meets the
case's target (PASS / MISS). Groups: single leaves, inputs that need a fix, containers, bulk
copies at 64 MiB, O(1) zero-copy conversions (1 GiB vs 4 KiB), peak memory, ``explain``, whole
containers to and from a CUDA device (SKIP without one), images (``tensorbridge.image``,
SKIP without Pillow), ``collate`` against ``default_collate``, a 2 GiB sharded checkpoint converted
to safetensors shards against the hand-written loop (``files``), and peer libraries where installed
(``pip install 'tensorbridge[bench]'``).

Exit status: 0 when every case ran (a MISS is a finding, not a failure), 1 when a case raised,
2 on a usage error.

>>> main(["--quick", "--filter", "leaf: to_torch", "--json"])  # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

from ._case import Case, Config, Result, Skip, Status

__all__ = ["all_cases", "config", "main", "run_cases"]


def all_cases(cfg: Config) -> list[Case]:
    """Every case of the suite, in report order, sized for ``cfg``."""
    from . import _bulk, _collate, _files, _gpu, _image, _leaf, _lists, _trees

    return (
        _leaf.cases()
        + _trees.cases()
        + _lists.cases()
        + _bulk.cases(cfg)
        + _gpu.cases(cfg)
        + _image.cases(cfg)  # tensorbridge.image (SKIP without Pillow)
        + _collate.cases()
        + _files.cases(cfg)
    )


def run_cases(cases: Sequence[Case], cfg: Config, progress: bool = False) -> list[Result]:
    """Measure each case in turn; a case that raises becomes an ERROR result, not a crash."""
    results = []
    for i, case in enumerate(cases, 1):
        if progress:
            print(f"[{i}/{len(cases)}] {case.group}: {case.name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            c = case.measure(cfg)
        except Skip as e:
            results.append(Result(case, "SKIP", note=str(e)))
            continue
        except Exception as e:  # a bug in tensorbridge or in the case: report it, go on
            results.append(Result(case, "ERROR", note=f"{type(e).__name__}: {e}"))
            continue
        status: Status = "PASS" if case.target.met(c.ratio) else "MISS"
        results.append(Result(case, status, c, seconds=time.perf_counter() - start))
    return results


def machine() -> dict[str, Any]:
    """Where the numbers were taken: CPU, cores, threads, library versions."""
    import numpy as np
    import torch

    import tensorbridge

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "tensorbridge": tensorbridge.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


# --- report --------------------------------------------------------------------------------


def _seconds(s: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.2f} MiB" if n >= 1 << 16 else f"{n / 1024:.1f} KiB"


def _cells(r: Result) -> tuple[str, str, str, str]:
    """ratio, min–max, tensorbridge column, idiom column."""
    c = r.comparison
    if c is None:
        return "", "", r.status.lower(), r.note
    ratio, spread = f"{c.ratio:.2f}×", f"{c.lo:.2f}–{c.hi:.2f}"
    if r.case.ratio == "memory":
        x = c.extra
        return (
            ratio,
            spread,
            f"+{x['extra_peak_MiB']:.1f} MiB peak",
            f"{x['input_MiB']:.0f} + {x['output_MiB']:.0f} MiB",
        )
    ours = _seconds(c.a_s)
    if "input_GB_per_s" in c.extra:
        ours += f" ({c.extra['input_GB_per_s']:.1f} GB/s)"
    if "bytes_copied" in c.extra:
        ours += f" ({_mib(c.extra['bytes_copied'])} copied)"
    return ratio, spread, ours, _seconds(c.b_s)


def _markdown(results: list[Result], info: dict[str, Any], cfg: Config) -> str:
    lines = [
        f"{info['cpu']}, {info['cores']} cores ({info['torch_threads']} torch threads), "
        f"Python {info['python']}, torch {info['torch']}, numpy {info['numpy']}, "
        f"{cfg.rounds} rounds{', --quick' if cfg.quick else ''}.",
        "",
        "| group | case | tensorbridge | idiom | target | ratio (median) | min–max | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio, spread, ours, idiom = _cells(r)
        lines.append(
            f"| {r.case.group} | {r.case.name} | {ours} | {idiom} | {r.case.target} | "
            f"{ratio} | {spread} | {r.status} |"
        )
    return "\n".join(lines)


def _print_table(results: list[Result], info: dict[str, Any], cfg: Config) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="tensorbridge bench — ratios are tensorbridge ÷ idiom, same process, interleaved",
        caption=f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}, "
        f"numpy {info['numpy']}, {cfg.rounds} rounds per case"
        + (" (--quick)" if cfg.quick else ""),
    )
    for name, justify in (
        ("group", "left"),
        ("case", "left"),
        ("tensorbridge", "right"),
        ("idiom", "right"),
        ("target", "right"),
        ("ratio", "right"),
        ("min–max", "right"),
        ("result", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    style = {"PASS": "green", "MISS": "red", "SKIP": "yellow", "ERROR": "bold red"}
    for r in results:
        ratio, spread, ours, idiom = _cells(r)
        table.add_row(
            r.case.group,
            r.case.name,
            ours,
            idiom,
            str(r.case.target),
            ratio,
            spread,
            f"[{style[r.status]}]{r.status}[/]",
        )
    console = Console(width=max(160, Console().width))
    console.print(table)
    counts = {s: sum(r.status == s for r in results) for s in style}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    for r in results:
        if r.status in ("SKIP", "ERROR"):
            console.print(f"{r.status} {r.case.group}: {r.case.name}: {r.note}", markup=False)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tensorbridge bench",
        description="Time tensorbridge against the hand-written idioms, as ratios (same run, "
        "interleaved rounds), and check each case against its target.",
    )
    p.add_argument("--quick", action="store_true", help="few rounds, 64 MiB instead of 1 GiB (CI)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--filter", metavar="SUBSTR", help="only cases whose 'group: name' has SUBSTR")
    p.add_argument("--rounds", type=int, metavar="N", help="rounds per case (default 31, quick 7)")
    return p


def config(quick: bool = False, rounds: int | None = None) -> Config:
    """The run's configuration: full (31 rounds, 1 GiB) or ``quick`` (7 rounds, 64 MiB)."""
    cfg = Config(quick=True, rounds=7, repeats=2, big_bytes=64 << 20) if quick else Config()
    return cfg if rounds is None else dataclasses.replace(cfg, rounds=rounds)


def main(argv: list[str] | None = None) -> int:
    """Run the suite with command-line ``argv`` (default ``sys.argv[1:]``); return the exit status.

    >>> main(["--quick", "--filter", "to_torch(a) vs", "--json"])  # doctest: +SKIP
    0
    """
    parser = _parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:  # --help, or a usage error argparse has already printed
        return int(e.code or 0)
    if args.rounds is not None and args.rounds < 1:
        print("tensorbridge bench: error: --rounds must be at least 1", file=sys.stderr)
        return 2
    cfg = config(args.quick, args.rounds)
    cases = all_cases(cfg)
    if args.filter:
        needle = args.filter.lower()
        cases = [c for c in cases if needle in f"{c.group}: {c.name}".lower()]
        if not cases:
            print(f"tensorbridge bench: error: no case matches {args.filter!r}", file=sys.stderr)
            return 2
    quiet = args.json or args.markdown
    results = run_cases(cases, cfg, progress=not quiet and sys.stderr.isatty())
    info = machine()
    if args.json:
        counts = {s: sum(r.status == s for r in results) for s in ("PASS", "MISS", "SKIP", "ERROR")}
        doc = {
            "machine": info,
            "quick": cfg.quick,
            "rounds": cfg.rounds,
            "summary": counts,
            "cases": [r.as_dict() for r in results],
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    elif args.markdown:
        print(_markdown(results, info, cfg))
    else:
        _print_table(results, info, cfg)
    return 1 if any(r.status == "ERROR" for r in results) else 0
