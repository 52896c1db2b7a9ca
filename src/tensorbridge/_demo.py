"""``tensorbridge demo``: every classic PyTorch↔NumPy pitfall, run live on this machine.

Each case is a few lines of code kept as text, and the text is what runs (``exec``), so the code
shown is exactly the code measured. For each case: the hand-written idiom and what it did (an
error, a warning, or a silent surprise found by a check), tensorbridge's call and its result,
whether the result shares memory with the input, and the time each took (best of a few runs).
CUDA cases run when a GPU is present and say "skipped: no GPU" otherwise.

>>> rows = run()                  # doctest: +SKIP
>>> rows[0].pitfall, rows[0].idiom_outcome  # doctest: +SKIP
('GPU tensor', 'skipped')
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["CASES", "Case", "Row", "as_json", "render", "run"]

REPEATS = 3


@dataclass(frozen=True)
class Case:
    """One pitfall: ``setup`` builds the input ``x``; ``idiom`` and ``call`` each leave ``out``."""

    pitfall: str
    setup: str
    idiom: str
    call: str
    surprise: str = ""  # expression (after the idiom) that is true when it silently went wrong
    surprise_text: str = ""  # what the surprise is, shown when ``surprise`` holds
    check: str = ""  # expression (after the call) naming what tensorbridge's result shows
    cuda: bool = False
    refuses: bool = False  # tensorbridge is meant to refuse this input with a clear error
    shares: bool = True  # ``out`` is a conversion of ``x``, so sharing memory means something
    pillow: bool = False  # an image case: needs Pillow (tensorbridge.image)


CASES: tuple[Case, ...] = (
    Case(
        "GPU tensor",
        "x = torch.arange(4.0, device='cuda')",
        "out = x.numpy()",
        "out = tb.to_numpy(x)",
        cuda=True,
    ),
    Case(
        "GPU tensor that requires grad",
        "x = torch.ones(3, device='cuda', requires_grad=True)",
        "out = x.cpu().numpy()",
        "out = tb.to_numpy(x)",
        cuda=True,
    ),
    Case(
        "tensor that requires grad",
        "x = torch.ones(3, requires_grad=True)",
        "out = x.numpy()",
        "out = tb.to_numpy(x)",
    ),
    Case(
        "in-place edit after .numpy()",
        "x = torch.zeros(3)",
        "out = x.numpy(); x.add_(1)",
        "out = tb.to_numpy(x, copy=True); x.add_(1)",
        surprise="out[0] == 1",
        surprise_text="out changed to [1. 1. 1.] after x.add_(1): it shares x's memory",
        check="'out unchanged after x.add_(1)' if out[0] == 0 else 'out changed!'",
    ),
    Case(
        "in-place edit after from_numpy",
        "x = np.zeros(3)",
        "out = torch.from_numpy(x); x += 1",
        "out = tb.to_torch(x, copy=True); x += 1",
        surprise="out[0] == 1",
        surprise_text="out changed to [1., 1., 1.] after x += 1: it shares x's memory",
        check="'out unchanged after x += 1' if out[0] == 0 else 'out changed!'",
    ),
    Case(
        "torch.Tensor() on integers",
        "x = np.array([16_777_217, 3])",
        "out = torch.Tensor(x)",
        "out = tb.to_torch(x)",
        surprise="out.dtype == torch.float32",
        surprise_text="int64 became float32 and 16777217 became 16777216.0",
    ),
    Case(
        "int32 labels into a loss",
        "x = np.array([0, 2, 1], dtype=np.int32); logits = torch.randn(3, 4)",
        "out = F.cross_entropy(logits, torch.from_numpy(x))",
        "out = F.cross_entropy(logits, tb.to_torch(x, dtype='int64'))",
        shares=False,
    ),
    Case(
        "float64 batch into a float32 model",
        "x = np.random.rand(4, 3); model = torch.nn.Linear(3, 2)",
        "out = model(torch.from_numpy(x))",
        "out = model(tb.to_torch(x, float_dtype=torch.float32))",
        shares=False,
    ),
    Case(
        ".item() on a non-scalar",
        "x = torch.tensor([0.5, 0.25])",
        "out = x.item()",
        "out = tb.to_python(x)",
    ),
    Case(
        "a NumPy scalar into JSON",
        "x = torch.tensor(0.5, requires_grad=True) * 1",
        "out = json.dumps({'loss': x.detach().numpy()})",
        "out = json.dumps({'loss': tb.item(x)})",
        shares=False,
    ),
    Case(
        "bfloat16",
        "x = torch.ones(3, dtype=torch.bfloat16)",
        "out = x.numpy()",
        "out = tb.to_numpy(x)",
    ),
    Case(
        "conjugate view",
        "x = torch.tensor([1 + 2j, 3 - 1j]).conj()",
        "out = x.numpy()",
        "out = tb.to_numpy(x)",
    ),
    Case(
        "negative strides",
        "x = np.arange(4.0)[::-1]",
        "out = torch.from_numpy(x)",
        "out = tb.to_torch(x)",
        surprise="x.flags.writeable is False",
        surprise_text="out is writable, but x's memory is read-only: writing to out is undefined",
    ),
    Case(
        "big-endian array",
        "x = np.arange(3, dtype='>f4')",
        "out = torch.from_numpy(x)",
        "out = tb.to_torch(x)",
        surprise="x.flags.writeable is False",
        surprise_text="out is writable, but x's memory is read-only: writing to out is undefined",
    ),
    Case(
        "read-only array",
        "x = np.frombuffer(bytes(12), dtype=np.float32)",
        "out = torch.from_numpy(x)",
        "out = tb.to_torch(x)",
        surprise="x.flags.writeable is False",
        surprise_text="out is writable, but x's memory is read-only: writing to out is undefined",
    ),
    Case(
        "masked array",
        "x = np.ma.masked_array([1.0, 2.0, -999.0], mask=[0, 0, 1])",
        "out = torch.as_tensor(x)",
        "out = tb.to_torch(x)",
        surprise="float(out[2]) == -999.0",
        surprise_text="the mask was dropped: the masked -999.0 is now data",
        refuses=True,
    ),
    Case(
        "a nested batch",
        "x = {'images': [np.ones((2, 2)), np.ones((2, 2))], 'labels': np.array([0, 1])}",
        "out = torch.tensor(x['images'])",
        "out = tb.to_torch(x, float_dtype=torch.float32)",
        surprise="out.dtype == torch.float64",
        surprise_text="one float64 tensor, built element by element; a float32 model rejects it",
    ),
)


# --- images (tensorbridge.image): torchvision's documented to_tensor/to_pil_image behaviour is
# written out in plain torch/NumPy/PIL code, so the demo needs no torchvision.
CASES += (
    Case(
        "16-bit image (torchvision to_tensor, in plain code)",
        "x = Image.fromarray(np.array([[0, 1000, 40000, 65535]], dtype=np.uint16))",
        "out = torch.from_numpy(np.array(x, np.int16, copy=True))  # to_tensor's I;16 → int16",
        "out = tb.image.to_torch(x)",
        surprise="int(out.min()) < 0",
        surprise_text="40000 and 65535 came back as negative int16 values: I;16 read as int16",
        check="f'{out.dtype} {out.flatten().tolist()}'",
        shares=False,
        pillow=True,
    ),
    Case(
        "float pixels to an image (torchvision to_pil_image, in plain code)",
        "x = torch.tensor([[[0.9999, 1.2, -0.1]]])",
        "out = Image.fromarray(x.mul(255).byte()[0].numpy())  # to_pil_image: mul(255).byte()",
        "out = tb.image.to_pil(x, value_range=(0, 1), overflow='clip')",
        surprise="[out.getpixel((i, 0)) for i in range(3)] != [255, 255, 0]",
        surprise_text="0.9999 became 254 (truncated) and 1.2, -0.1 wrapped to arbitrary bytes",
        check='f\'pixels {[out.getpixel((i, 0)) for i in range(3)]} (without overflow="clip" '
        "it refuses the 2 values outside [0, 1])'",
        shares=False,
        pillow=True,
    ),
    Case(
        "palette image",
        "x = Image.new('P', (2, 1)); x.putpalette([255, 0, 0, 0, 0, 255]); x.putpixel((1, 0), 1)",
        "out = torch.from_numpy(np.array(x))",
        "out = tb.image.to_torch(x, layout='HWC')",
        surprise="out.ndim == 2",
        surprise_text="palette indices [[0, 1]], not colours: red and blue are gone",
        check="f'colours {out.tolist()}'",
        shares=False,
        pillow=True,
    ),
    Case(
        "EXIF-rotated photo",
        "buf = io.BytesIO(); exif = Image.Exif(); exif[0x0112] = 6\n"
        "Image.new('RGB', (4, 2)).save(buf, 'JPEG', exif=exif); x = Image.open(buf)",
        "out = torch.from_numpy(np.array(x)).permute(2, 0, 1)",
        "out = tb.image.to_torch(x)",
        surprise="tuple(out.shape) == (3, 2, 4)",
        surprise_text="shape (3, 2, 4): EXIF says rotate 90°, a viewer shows it 4 high, 2 wide",
        check="f'shape {tuple(out.shape)}, as a viewer shows it'",
        shares=False,
        pillow=True,
    ),
    Case(
        "channel guessing",
        "x = np.arange(48, dtype=np.uint8).reshape(3, 4, 4)  # CHW: 3 channels, 4×4 pixels",
        "out = Image.fromarray(x)",
        "out = tb.image.to_pil(x, layout='CHW')",
        surprise="out.mode == 'RGBA'",
        surprise_text="a 4×3 RGBA image: channels taken from the last axis, rows from the first",
        check="f'mode {out.mode}, size {out.size}'",
        shares=False,
        pillow=True,
    ),
)


@dataclass
class Row:
    """What one case did on this machine (times in seconds; ``None`` where it did not run)."""

    pitfall: str
    idiom: str
    idiom_outcome: str  # "error", "warning", "silent", "ok" or "skipped"
    idiom_result: str
    idiom_seconds: float | None
    idiom_shared: bool | None
    call: str
    tensorbridge_outcome: str  # "ok", "refused" (on purpose), "error", "warning" or "skipped"
    tensorbridge_result: str
    tensorbridge_seconds: float | None
    tensorbridge_shared: bool | None


def _namespace() -> dict[str, Any]:
    import torch.nn.functional as F

    import tensorbridge as tb

    ns = {"np": np, "torch": torch, "tb": tb, "F": F, "json": json}
    try:  # image cases: PIL and tensorbridge.image (reached as tb.image)
        import io

        from PIL import Image

        import tensorbridge.image  # noqa: F401

        ns.update(Image=Image, io=io)
    except ImportError:
        pass
    return ns


def _round(value: Any) -> Any:
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, complex):
        return complex(float(f"{value.real:.4g}"), float(f"{value.imag:.4g}"))
    return value


def _show(value: Any) -> str:
    """A short description of a result: kind, dtype, values (or shape, when there are many)."""
    if isinstance(value, torch.Tensor):
        shown = value.detach().cpu().resolve_conj().resolve_neg()
        small = shown.numel() <= 6 and shown.dim() <= 1
        values = _round(shown.tolist()) if small else f"shape {tuple(shown.shape)}"
        device = "" if value.device.type == "cpu" else f" on {value.device}"
        return f"tensor {str(value.dtype).removeprefix('torch.')}{device} {values}"
    if isinstance(value, np.ndarray):
        small = value.size <= 6 and value.ndim <= 1
        values = (
            np.array2string(value, separator=", ", precision=4) if small else f"shape {value.shape}"
        )
        return f"ndarray {value.dtype} {values}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_show(v)}" for k, v in value.items()) + "}"
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, (torch.Tensor, np.ndarray)) for v in value)
    ):
        return f"[{len(value)} × {_show(value[0])}]"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _exception(exc: BaseException) -> str:
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = line if len(line) <= 160 else line[:157] + "..."
    return f"{type(exc).__name__}: {line}"


def _shared(ns: dict[str, Any], case: Case) -> bool | None:
    import tensorbridge as tb

    if not case.shares:
        return None
    out, x = ns.get("out"), ns.get("x")
    if isinstance(out, (torch.Tensor, np.ndarray)) and isinstance(x, (torch.Tensor, np.ndarray)):
        try:
            return bool(tb.shares_memory(out, x))
        except Exception:
            return None
    return None


def _run(
    setup: Any, code: Any
) -> tuple[dict[str, Any], BaseException | None, list[warnings.WarningMessage], float]:
    """Run ``code`` after ``setup`` REPEATS times: the first run's namespace, error and warnings
    (PyTorch warns only once per process), and the best time."""
    best = float("inf")
    first: tuple[dict[str, Any], BaseException | None, list[warnings.WarningMessage]] | None = None
    for _ in range(REPEATS):
        ns = _namespace()
        exec(setup, ns)
        error: BaseException | None = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            try:
                exec(code, ns)
            except Exception as exc:
                error = exc
            best = min(best, time.perf_counter() - start)
        if first is None:
            first = (ns, error, list(caught))
    assert first is not None
    return (*first, best)


def run_case(case: Case) -> Row:
    """Run one case (idiom, then tensorbridge) and describe what happened."""
    missing = "no GPU" if case.cuda and not torch.cuda.is_available() else ""
    if case.pillow and "Image" not in _namespace():
        missing = 'Pillow not installed (pip install "tensorbridge[image]")'
    if missing:
        return Row(
            case.pitfall,
            case.idiom,
            "skipped",
            f"skipped: {missing}",
            None,
            None,
            case.call,
            "skipped",
            f"skipped: {missing}",
            None,
            None,
        )
    setup = compile(case.setup, f"<setup: {case.pitfall}>", "exec")

    ns, error, caught, idiom_time = _run(setup, compile(case.idiom, "<idiom>", "exec"))
    shared = None
    if error is not None:
        outcome, result = "error", _exception(error)
    elif caught:
        w = caught[0]
        outcome, result = "warning", _exception(w.category(str(w.message)))
        shared = _shared(ns, case)
    elif case.surprise and eval(case.surprise, ns):
        outcome, result, shared = "silent", case.surprise_text, _shared(ns, case)
    else:
        outcome, result, shared = "ok", _show(ns.get("out")), _shared(ns, case)

    ns, error, caught, tb_time = _run(setup, compile(case.call, "<tensorbridge>", "exec"))
    tb_shared = None
    if error is not None:
        tb_outcome, tb_result = ("refused" if case.refuses else "error"), _exception(error)
    elif caught:
        tb_outcome, tb_result = "warning", _exception(caught[0].category(str(caught[0].message)))
    else:
        tb_outcome = "ok"
        tb_result = eval(case.check, ns) if case.check else _show(ns.get("out"))
        tb_shared = _shared(ns, case)
    return Row(
        case.pitfall,
        case.idiom,
        outcome,
        result,
        idiom_time,
        shared,
        case.call,
        tb_outcome,
        tb_result,
        tb_time,
        tb_shared,
    )


def run(cases: tuple[Case, ...] = CASES) -> list[Row]:
    """Run every case on this machine."""
    return [run_case(case) for case in cases]


def as_json(rows: list[Row]) -> dict[str, Any]:
    """The rows and a description of this machine, JSON-ready."""
    from . import __version__

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "machine": {
            "tensorbridge": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "cuda": gpu,
        },
        "rows": [asdict(row) for row in rows],
    }


_STYLE = {
    "error": "red",
    "warning": "yellow",
    "silent": "magenta",
    "ok": "green",
    "refused": "green",
    "skipped": "dim",
}
_LABEL = {
    "error": "✗ error",
    "warning": "⚠ warning",
    "silent": "✗ silent",
    "ok": "✓",
    "refused": "✓ refused",
    "skipped": "–",
}


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1e6:.0f} µs" if value < 1e-3 else f"{value * 1e3:.1f} ms"


def _yes_no(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "no")


def _cells(row: Row) -> tuple[Any, Any, str, str]:
    from rich.text import Text

    idiom = Text()
    idiom.append(row.idiom, style="cyan")
    idiom.append(f"\n{_LABEL[row.idiom_outcome]} ", style=_STYLE[row.idiom_outcome])
    idiom.append(row.idiom_result)
    call = Text()
    call.append(row.call, style="cyan")
    call.append(f"\n{_LABEL[row.tensorbridge_outcome]} ", style=_STYLE[row.tensorbridge_outcome])
    call.append(row.tensorbridge_result)
    shared = f"{_yes_no(row.idiom_shared)} / {_yes_no(row.tensorbridge_shared)}"
    times = f"{_seconds(row.idiom_seconds)} / {_seconds(row.tensorbridge_seconds)}"
    return idiom, call, shared, times


def render(rows: list[Row], console: Any) -> None:
    """Print the rows on a ``rich`` console: a table, or one block per pitfall when narrow."""
    from rich.table import Table
    from rich.text import Text

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    title = f"PyTorch {torch.__version__} ↔ NumPy {np.__version__} on this machine ({gpu})"
    if console.width >= 120:
        table = Table(title=title, show_lines=True, title_justify="left")
        table.add_column("pitfall", ratio=2)
        table.add_column("hand-written idiom → what happened", ratio=5)
        table.add_column("tensorbridge → result", ratio=5)
        table.add_column("shared", justify="center", no_wrap=True)
        table.add_column("time\nidiom / tb", justify="right", no_wrap=True)
        for row in rows:
            table.add_row(Text(row.pitfall, style="bold"), *_cells(row))
        console.print(table)
    else:
        console.print(title, markup=False, highlight=False)
        for row in rows:
            idiom, call, shared, times = _cells(row)
            console.rule(Text(row.pitfall, style="bold"), align="left")
            console.print(idiom)
            console.print(call)
            console.print(
                f"shared: {shared}   time: {times}  (idiom / tensorbridge)",
                markup=False,
                highlight=False,
                style="dim",
            )
    bad = sum(row.idiom_outcome in ("error", "warning", "silent") for row in rows)
    good = sum(row.tensorbridge_outcome in ("ok", "refused") for row in rows)
    ran = sum(row.idiom_outcome != "skipped" for row in rows)
    console.print(
        f"{bad} of {ran} idioms failed, warned or went silently wrong; "
        f"tensorbridge handled {good} of {ran} (refused = a clear error on purpose, "
        "where converting would lose data). shared = the result "
        "shares memory with the input (idiom / tensorbridge).",
        markup=False,
        highlight=False,
    )
