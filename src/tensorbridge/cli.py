"""The ``tensorbridge`` command: ``demo``, ``convert``, ``inspect``, ``bench``.

Thin by design: each subcommand parses its arguments, calls one public function
(``tensorbridge._demo.run``, ``tensorbridge.files.convert``, ``tensorbridge.files.inspect``,
``tensorbridge.bench.main``) and prints the result. Errors are one line on stderr, never a
traceback.

Exit status: 0 success; 1 bad input or a conversion that cannot be done (missing, corrupt,
truncated or unsafe file, a dtype the destination format cannot hold, a failed ``--verify``);
2 usage error (bad option, unknown extension, DST is SRC, DST exists without ``--force``);
130 interrupted (nothing is left half-written).

>>> main(["inspect", "model.safetensors", "--json"])  # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

from ._plan import format_bytes as human_bytes

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PROGRESS_MIN_BYTES = 16 << 20  # smaller conversions finish too fast for a progress bar to help


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _parser() -> _Parser:
    parser = _Parser(
        prog="tensorbridge",
        description="Move tensors between PyTorch and NumPy, and between tensor files, safely.",
        epilog="Exit status: 0 ok, 1 bad input or impossible conversion, 2 usage error, "
        "130 interrupted.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"tensorbridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="show every classic PyTorch↔NumPy pitfall live, beside tensorbridge"
    )
    demo.add_argument("--json", action="store_true", help="print the rows as JSON")
    demo.set_defaults(func=_demo)

    conv = sub.add_parser(
        "convert",
        help="copy tensors between .npy, .npz, .pt/.pth/.bin/.ckpt, .safetensors, sharded "
        "checkpoints, DCP directories and image files",
        description="Copy every tensor of SRC into DST; formats come from the extensions. "
        "SRC or DST may be a directory or a Hugging Face index file (sharded checkpoints); SRC "
        "may be a torch.distributed.checkpoint directory. Atomic: DST appears only when "
        "complete. PyTorch files load with weights_only=True.",
    )
    conv.add_argument("src", metavar="SRC")
    conv.add_argument("dst", metavar="DST")
    conv.add_argument("--dtype", help="cast every tensor (e.g. float32, bfloat16, int64)")
    conv.add_argument(
        "--float-dtype", help="cast only real floating-point tensors (integers untouched)"
    )
    conv.add_argument(
        "--verify",
        action="store_true",
        help="re-read DST and compare bit for bit before it replaces anything",
    )
    conv.add_argument("--force", action="store_true", help="replace an existing DST")
    conv.add_argument(
        "--skip-non-tensors",
        action="store_true",
        help="leave out non-tensor values (epoch numbers, strings) where DST cannot hold them",
    )
    conv.add_argument(
        "--max-shard-size",
        metavar="SIZE",
        help="write shards of at most SIZE (5GB = 5*10^9 bytes, 5GiB = 5*2^30; default 5GB) "
        "into a DST directory or index file",
    )
    conv.add_argument(
        "--format",
        choices=["dcp"],
        help="write DST as a torch.distributed.checkpoint directory",
    )
    # image files (tensorbridge.files.image)
    conv.add_argument(
        "--value-range",
        type=_value_range,
        metavar="LO,HI",
        help="map float tensors from [LO, HI] to 8-bit pixels when writing an image file",
    )
    conv.add_argument("--clip", action="store_true", help="clip values outside --value-range")
    conv.add_argument("--json", action="store_true", help="print the report as JSON")
    conv.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    conv.set_defaults(func=_convert)

    insp = sub.add_parser(
        "inspect",
        help="list names, dtypes, shapes and sizes of the tensors in a file or checkpoint "
        "directory (shards, index check, aliases)",
    )
    insp.add_argument("file", metavar="FILE|DIR")
    insp.add_argument("--json", action="store_true", help="print JSON")
    insp.set_defaults(func=_inspect)

    sub.add_parser(
        "bench",
        help="the benchmark suite, as ratios against the hand-written idioms",
        add_help=False,
    )
    return parser


def _value_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (e.g. 0,1), not {text!r}") from None
    return lo, hi


def _fail(message: str, code: int) -> int:
    first = " ".join(str(message).split("\n")[0].split()) or "unknown error"
    print(f"tensorbridge: error: {first}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    from ._errors import ConversionError
    from .files import BadFileError, FileUsageError

    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list[:1] == ["bench"]:
            return _bench(args_list[1:])
        parser = _parser()
        try:
            args = parser.parse_args(args_list)
        except _UsageError as exc:
            return _fail(str(exc), EXIT_USAGE)
        except SystemExit as exc:  # --help and --version print and exit 0
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args))
    except FileUsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (BadFileError, ConversionError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return _fail("interrupted; no output file was written or changed", EXIT_INTERRUPTED)
    except MemoryError:
        return _fail("out of memory", EXIT_BAD_INPUT)
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return _fail(f"{where}{exc.strerror or exc}", EXIT_BAD_INPUT)
    except Exception as exc:  # the promise is one line, never a traceback
        return _fail(
            f"internal error ({type(exc).__name__}: {exc}); please report it", EXIT_BAD_INPUT
        )


# --------------------------------------------------------------------------------------------
# subcommands


def _console(stream: Any = None) -> Any:
    from rich.console import Console

    stream = stream or sys.stdout
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(
        file=stream, width=None if is_tty else 150, highlight=False
    )  # piped: wide enough for the tables


def _demo(args: argparse.Namespace) -> int:
    from . import _demo as demo

    rows = demo.run()
    if args.json:
        print(json.dumps(demo.as_json(rows), indent=2))
    else:
        demo.render(rows, _console())
    return EXIT_OK


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the atomic writer can clean up."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _ProgressBar:
    """A rich progress bar on stderr, started only for long work on a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if total < PROGRESS_MIN_BYTES:
                return
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=_console(sys.stderr),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _convert(args: argparse.Namespace) -> int:
    from . import files

    bar = (
        _ProgressBar(f"{args.src} → {args.dst}") if not args.quiet and sys.stderr.isatty() else None
    )
    try:
        with _sigterm_as_interrupt():
            report = files.convert(
                args.src,
                args.dst,
                dtype=args.dtype,
                float_dtype=args.float_dtype,
                verify=args.verify,
                force=args.force,
                skip_non_tensors=args.skip_non_tensors,
                progress=bar,
                max_shard_size=args.max_shard_size,
                format=args.format,
                value_range=args.value_range,
                clip=args.clip,
            )
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    elif not args.quiet:
        checked = ", verified bit for bit" if report.verified else ""
        plural = "s" * (report.tensors != 1)
        size = human_bytes(report.bytes)
        where = f" ({len(report.files)} files)" if report.files else ""
        print(f"wrote {report.dst}{where}: {report.tensors} tensor{plural}, {size}{checked}")
        if report.kept:
            print(f"kept {len(report.kept)} non-tensor value(s): {_some(report.kept)}")
        if report.skipped:
            print(f"left out {len(report.skipped)} non-tensor value(s): {_some(report.skipped)}")
    return EXIT_OK


def _some(names: list[str], n: int = 6) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def _inspect(args: argparse.Namespace) -> int:
    from . import files

    info = files.inspect(args.file)
    if args.json:
        print(json.dumps(info.as_json(), indent=2))
    else:
        _render_info(info)
    if not info.entries:
        return _fail(f"{args.file} holds no tensors", EXIT_BAD_INPUT)
    return EXIT_OK


def _render_info(info: Any) -> None:
    from rich.table import Table

    table = Table(
        title=f"{info.path} ({info.format}, {human_bytes(info.file_bytes)})", title_justify="left"
    )
    table.add_column("name", overflow="fold")
    table.add_column("dtype")
    table.add_column("shape")
    table.add_column("bytes", justify="right")
    for e in info.entries:
        table.add_row(e.name, e.tag, str(e.shape), human_bytes(e.nbytes))
    n = len(info.entries)
    table.add_section()
    table.add_row(
        f"{n} tensor{'s' * (n != 1)}",
        "",
        f"{info.total_elements:,} elements",
        human_bytes(info.total_bytes),
    )
    console = _console()
    console.print(table)
    if info.shards:
        _render_shards(info, console)
    for alias, target in info.aliases.items():
        console.print(f"alias: {alias} shares {target} (stored once)", markup=False)
    for key, value in info.others.items():
        console.print(f"not a tensor: {key} ({value})", markup=False)
    for key, value in info.metadata.items():
        console.print(f"metadata: {key} = {value}", markup=False)


def _render_shards(info: Any, console: Any) -> None:
    from rich.table import Table

    table = Table(title="files", title_justify="left")
    columns = [
        c for c in ("file", "tensors", "chunks", "bytes", "file_bytes") if c in info.shards[0]
    ]
    for column in columns:
        table.add_column(column.replace("_", " "), justify="left" if column == "file" else "right")
    for row in info.shards:
        table.add_row(
            *(human_bytes(row[c]) if c.endswith("bytes") else str(row[c]) for c in columns)
        )
    console.print(table)
    if info.index is not None:
        console.print(f"index: {info.index}", markup=False)
    if info.index_total_size is not None:
        agrees = "agrees" if info.index_total_size == info.total_bytes else "differs"
        console.print(
            f"index total_size: {info.index_total_size:,} B ({agrees} with the tensors' "
            f"{info.total_bytes:,} B)",
            markup=False,
        )
    if info.index_check is not None:
        console.print(f"index check: {info.index_check}", markup=False)


def _bench(argv: list[str]) -> int:
    try:
        from .bench import main as bench_main
    except ImportError as exc:
        return _fail(
            f"the benchmark suite is not available in this install ({exc})", EXIT_BAD_INPUT
        )
    return int(bench_main(argv) or 0)
