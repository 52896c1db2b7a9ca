"""``explain`` is what runs for the ecosystem's objects too: the steps executed equal the
reported ones, with the same outcome (SPEC: "explain")."""

import warnings

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

import tensorbridge as tb
from tensorbridge._plan import tracing


def _numel(value):
    return value.numel() if isinstance(value, torch.Tensor) else int(np.size(value))


def _outcome(fn):
    try:
        return fn(), None
    except tb.ConversionError as e:
        return None, type(e)


def check_same_steps(obj, to, options):
    """The conversion (twice: the second from the plan caches) runs explain's steps, with the
    same outcome (the same result type, or the same error class)."""
    convert = tb.to_numpy if to == "numpy" else tb.to_torch
    with tracing() as executed:
        plan, planned_error = _outcome(lambda: tb.explain(obj, to=to, **options))
        executed.clear()  # explain runs adapters (reading a producer): not the conversion
        for _ in range(2):
            _, error = _outcome(lambda: convert(obj, **options))
            assert error is planned_error, (error, planned_error)
            ran = [step.describe(_numel(value)) for step, value in executed]
            executed.clear()
            if plan is not None:
                container = any(s.startswith("convert ") for s in plan.steps)
                leaves = [s for leaf in plan.leaves.values() for s in leaf.steps]
                assert ran == (leaves if container else list(plan.steps))


def _masked():
    from torch.masked import masked_tensor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return masked_tensor(torch.ones(2), torch.tensor([True, False]))


def _objects():
    made = {
        "packed": lambda: pack_sequence([torch.ones(2), torch.ones(1)]),
        "size": lambda: torch.Size([2, 3]),
        "list-floats": lambda: [0.1, 2.5, 1e300],
        "list-ints": lambda: [[1, 2], [3, 4]],
        "big-int": lambda: [2**70],
        "generator": lambda: (x for x in [1.0]),
        "capsule": lambda: torch.arange(3.0).__dlpack__(),
        "masked": _masked,
    }
    try:
        import pandas as pd

        made["frame"] = lambda: pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
        made["mixed-frame"] = lambda: pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
        made["nullable"] = lambda: pd.Series([1, 2], dtype="Int64")
        made["with-na"] = lambda: pd.Series([1, None], dtype="Int64")
        made["categorical"] = lambda: pd.Series(["a"], dtype="category")
    except ImportError:
        pass
    try:
        import scipy.sparse as sp

        made["csr"] = lambda: sp.csr_array(np.eye(3))
        made["dok"] = lambda: sp.dok_matrix(np.eye(2))
    except ImportError:
        pass
    try:
        import xarray as xr

        made["dataarray"] = lambda: xr.DataArray(np.arange(3.0))
        made["dataset"] = lambda: xr.Dataset({"v": ("x", np.arange(2.0))}, coords={"x": [0, 1]})
    except ImportError:
        pass
    try:
        import h5py

        def dataset():
            f = h5py.File("explain.h5", "w", driver="core", backing_store=False)
            f["d"] = np.arange(4, dtype=">f4")
            return f["d"]

        made["h5-dataset"] = dataset
    except ImportError:
        pass
    try:
        import jax.numpy as jnp

        made["jax-bf16"] = lambda: jnp.ones(3, dtype=jnp.bfloat16)
    except ImportError:
        pass
    return made


OBJECTS = _objects()
OPTIONS = [
    {},
    {"dtype": "float32"},
    {"copy": True},
    {"copy": False},
]


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "float32", "copy", "no-copy"])
@pytest.mark.parametrize("name", sorted(OBJECTS))
@pytest.mark.parametrize("to", ["numpy", "torch"])
def test_foreign_objects_run_what_explain_reports(name, to, options):
    """The conversion of each foreign object runs explain's steps, with explain's outcome."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_same_steps(OBJECTS[name](), to, options)
