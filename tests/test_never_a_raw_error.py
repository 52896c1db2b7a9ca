"""Whatever goes in, a conversion returns or raises one ConversionError: never a raw error from
PyTorch or NumPy, and never a warning (pytest turns warnings into errors)."""

import itertools
import warnings

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tensorbridge as tb

NP_DTYPES = [
    "bool", "i1", "i4", "u2", "u8", "f2", "f4", "f8", "c8", "c16", ">f4", ">i8",
    np.longdouble, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.int4, "U3", "S2", "O",
    "M8[s]", [("a", "i4"), ("b", "f4")],
]  # fmt: skip
TORCH_DTYPES = [
    torch.bool, torch.int8, torch.uint16, torch.int64, torch.float16, torch.bfloat16,
    torch.float32, torch.float64, torch.complex64, torch.complex128, torch.float8_e5m2,
]  # fmt: skip
DTYPE_ARGS = [
    None, "float32", "f8", "bfloat16", torch.float16, np.int32, int, bool, complex, torch.uint8,
    "float8_e4m3fn", torch.complex32, torch.qint8, "nonsense",
]  # fmt: skip
shapes = st.lists(st.sampled_from([0, 1, 2, 3]), max_size=3).map(tuple)


@st.composite
def arrays(draw):
    """NumPy arrays of many dtypes (odd ones too), random bytes, views and flags."""
    dtype = np.dtype(draw(st.sampled_from(NP_DTYPES)))
    shape = draw(shapes)
    a = np.zeros(shape, dtype=dtype)
    if dtype.kind in "biufcV" and dtype.names is None and a.nbytes:
        raw = draw(st.binary(min_size=a.nbytes, max_size=a.nbytes))
        a = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if dtype.kind == "O" and a.size:
        a[...] = draw(st.sampled_from([1, 2.5, None, "x"]))
    if a.ndim and draw(st.booleans()):
        a = a[::-1]
    if a.ndim > 1 and draw(st.booleans()):
        a = a.T
    if draw(st.booleans()):
        a.flags.writeable = False
    return a


@st.composite
def tensors(draw):
    """Tensors of many dtypes, with grad, conjugate/negative bits, sparse, meta, transposed."""
    dtype = draw(st.sampled_from(TORCH_DTYPES))
    shape = draw(shapes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # beta/prototype layouts say so on creation
        t = torch.zeros(shape, dtype=dtype)
        variant = draw(st.sampled_from(["plain", "conj", "neg", "sparse", "grad", "meta", "t"]))
        if variant == "conj" and dtype.is_complex:
            t = t.conj()
        elif variant == "neg" and dtype.is_complex:
            t = t.conj().imag
        elif variant == "sparse" and dtype in (torch.float32, torch.float64) and t.dim():
            t = t.to_sparse()
        elif variant == "grad" and dtype in (torch.float32, torch.float64):
            t.requires_grad_()
        elif variant == "meta":
            t = torch.empty(shape, dtype=dtype, device="meta")
        elif variant == "t" and t.dim() > 1:
            t = t.transpose(0, 1)
    return t


leaves = st.one_of(
    arrays(),
    tensors(),
    st.sampled_from([1, 2.5, True, 2**70, "s", b"ab", None, np.float32(3), [1, 2.5], [0, "a"]]),
)
inputs = st.recursive(
    leaves,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=3), kids)),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    obj=inputs,
    func=st.sampled_from(["to_numpy", "to_torch", "to_python", "item", "explain"]),
    dtype=st.sampled_from(DTYPE_ARGS),
    copy=st.sampled_from([None, True, False]),
)
def test_any_input_returns_or_raises_one_conversion_error(obj, func, dtype, copy):
    """Every public function returns, or raises a ConversionError — nothing else escapes."""
    try:
        if func in ("to_numpy", "to_torch"):
            getattr(tb, func)(obj, dtype=dtype, copy=copy)
        elif func == "explain":
            str(tb.explain(obj, to="torch", dtype=dtype, copy=copy))
        else:
            getattr(tb, func)(obj)
    except tb.ConversionError:
        pass


@settings(max_examples=200, deadline=None)
@given(a=st.one_of(arrays(), tensors()), b=st.one_of(arrays(), tensors()))
def test_shares_memory_of_anything_is_a_bool(a, b):
    """shares_memory answers True or False for any pair of arrays and tensors."""
    try:
        assert tb.shares_memory(a, b) in (True, False)
    except tb.ConversionError:
        pytest.fail("shares_memory refused a tensor or an array")


# --- the ecosystem's own objects (SPEC: "Objects from the rest of the ecosystem") ----------


def _optional(name):
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        return None


def _pandas_objects(pd):
    return [
        lambda: pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]}),
        lambda: pd.DataFrame({"a": pd.array([1, None], dtype="Int64")}),
        lambda: pd.DataFrame({"c": pd.Categorical(["x", "y"]), "n": [1, 2]}),
        lambda: pd.DataFrame({"s": ["a", "b"], "t": pd.date_range("2020", periods=2, tz="UTC")}),
        lambda: pd.Series([True, None], dtype="boolean"),
        lambda: pd.Series([1.5, None], dtype="Float64"),
        lambda: pd.Series([1, "x"], dtype=object),
        lambda: pd.Index([3, 4]),
        lambda: pd.MultiIndex.from_tuples([(1, 2)]),
        lambda: pd.DataFrame(),
    ]


def _scipy_objects(sp):
    dense = np.array([[0, 1.5], [2.0, 0]])
    made = [lambda f=f: sp.csr_matrix(dense).asformat(f) for f in sp_formats]
    return [
        *made,
        lambda: sp.csr_array(dense),
        lambda: sp.csr_matrix(np.ones((2, 2), dtype=np.longdouble)),
        lambda: sp.csr_matrix((0, 3)),
    ]


_h5_names = itertools.count()
sp_formats = ["csr", "csc", "coo", "bsr", "dok", "lil", "dia"]


def _h5py_objects(h5py):
    def file():
        name = f"in-memory-{next(_h5_names)}.h5"
        f = h5py.File(name, "w", driver="core", backing_store=False)
        f["be"] = np.arange(3, dtype=">i4")
        f["s"] = "text"
        f["rec"] = np.zeros(2, dtype=[("a", "i4"), ("b", "f4")])
        f["e"] = h5py.Empty("f")
        f.create_group("g")["x"] = np.ones(2)
        return f

    def closed():
        f = file()
        d = f["be"]
        f.close()
        return d

    return [file, lambda: file()["be"], lambda: file()["g"], lambda: file()["rec"], closed]


def _jax_objects(jnp):
    return [
        lambda: jnp.ones(3, dtype=jnp.bfloat16),
        lambda: jnp.array([True, False]),
        lambda: jnp.arange(4.0).reshape(2, 2).T,
    ]


def _torch_objects():
    from torch.nn.utils.rnn import pack_sequence

    def masked():
        from torch.masked import masked_tensor

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return masked_tensor(torch.ones(2), torch.tensor([True, False]))

    def inference():
        with torch.inference_mode():
            return torch.ones(2)

    def used_capsule():
        c = torch.ones(2).__dlpack__()
        torch.from_dlpack(c)
        return c

    return [
        masked,
        inference,
        used_capsule,
        lambda: torch.arange(3).__dlpack__(),
        lambda: pack_sequence([torch.ones(2), torch.ones(1)]),
        lambda: torch.nn.Linear(1, 1),
        lambda: torch.nn.Parameter(torch.ones(2)),
        lambda: torch.Size([2, 3]),
        lambda: torch.ones(2, requires_grad=True).grad,
    ]


class _RaisingArray:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("boom")


class _RaisingAll:
    @property
    def dtype(self):
        raise KeyError("dtype")

    def __dlpack__(self, **kw):
        raise ValueError("dlpack")

    def __dlpack_device__(self):
        return (1, 0)


def _python_objects():
    import collections
    import types

    return [
        lambda: (x for x in [1]),
        lambda: iter([1.0]),
        lambda: {1, 2},
        lambda: None,
        lambda: object(),
        _RaisingArray,
        _RaisingAll,
        lambda: collections.ChainMap({"a": np.ones(1)}),
        lambda: types.MappingProxyType({"a": torch.ones(1)}),
        lambda: [0.1, 1e300, 2**70],
        lambda: np.array([np.array([1], dtype=object), np.array([2], dtype=object)], dtype=object),
    ]


def _ecosystem():
    builders = _python_objects() + _torch_objects()
    for name, make in [
        ("pandas", _pandas_objects),
        ("scipy.sparse", _scipy_objects),
        ("h5py", _h5py_objects),
        ("jax.numpy", _jax_objects),
    ]:
        module = _optional(name)
        if module is not None:
            builders += make(module)
    xr = _optional("xarray")
    if xr is not None:
        builders += [
            lambda: xr.DataArray(np.ones(2)),
            lambda: xr.Dataset({"v": ("x", np.ones(2))}, coords={"x": [1, 2]}),
        ]
    return builders


foreign = st.sampled_from(_ecosystem()).map(lambda make: make())
foreign_inputs = st.one_of(
    foreign,
    st.lists(foreign, max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), foreign, max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    obj=foreign_inputs,
    func=st.sampled_from(["to_numpy", "to_torch", "to_python", "item", "explain", "shares"]),
    dtype=st.sampled_from([None, "float64", torch.float32, "int8", torch.bool]),
    copy=st.sampled_from([None, True, False]),
    requires_grad=st.sampled_from([None, True, False]),
    device=st.sampled_from([None, "cpu", "gpu"]),
)
def test_ecosystem_objects_return_or_raise_one_conversion_error(
    obj, func, dtype, copy, requires_grad, device
):
    """pandas, xarray, scipy, h5py, JAX, capsules, subclasses, refusals and broken objects, alone
    or in containers, under any options: a result or one ConversionError, never a raw error."""
    try:
        if func == "to_numpy":
            tb.to_numpy(obj, dtype=dtype, copy=copy)
        elif func == "to_torch":
            tb.to_torch(obj, dtype=dtype, copy=copy, requires_grad=requires_grad, device=device)
        elif func == "explain":
            str(tb.explain(obj, to="torch", dtype=dtype, copy=copy, device=device))
            str(tb.explain(obj, to="numpy", dtype=dtype, copy=copy))
        elif func == "shares":
            assert tb.shares_memory(obj, np.ones(1)) in (True, False)
        else:
            getattr(tb, func)(obj)
    except tb.ConversionError:
        pass
