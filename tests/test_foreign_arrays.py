"""xarray, scipy.sparse and h5py objects with the real libraries (SPEC: "Objects from the rest of
the ecosystem"): values exact, containers as plain dicts, copies counted."""

import json
import warnings

import numpy as np
import pytest
import torch

import tensorbridge as tb

# --------------------------------------------------------------------------------- xarray


def test_dataarray_is_its_values_shared():
    """A DataArray converts to its values, sharing memory (both directions)."""
    xr = pytest.importorskip("xarray")
    da = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=("y", "x"))
    t = tb.to_torch(da)
    assert np.shares_memory(t.numpy(), da.values)
    assert tb.explain(da, to="torch").copies == 0
    np.testing.assert_array_equal(tb.to_numpy(da), np.arange(6.0).reshape(2, 3))


def test_dataset_is_a_plain_dict_of_data_variables():
    """A Dataset becomes a dict of its data variables; coordinates are left out, explain says so."""
    xr = pytest.importorskip("xarray")
    ds = xr.Dataset(
        {"t": ("x", np.array([1.5, 2.5])), "n": ("x", np.array([3, 4], dtype=np.int32))},
        coords={"x": [10, 20]},
    )
    out = tb.to_torch(ds, float_dtype=torch.float32)
    assert type(out) is dict and list(out) == ["t", "n"]
    assert torch.equal(out["t"], torch.tensor([1.5, 2.5]))
    assert torch.equal(out["n"], torch.tensor([3, 4], dtype=torch.int32))
    plan = tb.explain(ds)
    assert any("coordinates 'x' left out" in s for s in plan.steps)
    assert json.dumps(tb.to_python(ds)) == '{"t": [1.5, 2.5], "n": [3, 4]}'


# --------------------------------------------------------------------------------- scipy

FORMATS = ["csr", "csc", "coo", "bsr", "dok", "lil", "dia"]
LAYOUTS = {"csr": torch.sparse_csr, "csc": torch.sparse_csc, "bsr": torch.sparse_bsr}


def _sparse(fmt, kind):
    sp = pytest.importorskip("scipy.sparse")
    dense = np.array([[0, 1.5, 0, 0], [2.0, 0, 0, -0.0], [0, 0, 3.25, 0]])
    m = sp.csr_matrix(dense) if kind == "matrix" else sp.csr_array(dense)
    return m.asformat(fmt), dense


@pytest.mark.parametrize("kind", ["matrix", "array"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_scipy_sparse_to_torch_keeps_layout_and_values(fmt, kind):
    """CSR/CSC/BSR keep their layout, other formats become COO; dense values are exact."""
    m, dense = _sparse(fmt, kind)
    t = tb.to_torch(m)
    assert t.layout is LAYOUTS.get(fmt, torch.sparse_coo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(t.to_dense().numpy(), dense)
    assert t.dtype == torch.float64
    plan = tb.explain(m, to="torch")
    assert plan.copies == 1 and not plan.shares_memory


@pytest.mark.parametrize("fmt", ["csr", "csc", "bsr"])
def test_scipy_compressed_indices_are_scipys(fmt):
    """The compressed formats' index arrays equal scipy's own, as int64."""
    m, _ = _sparse(fmt, "array")
    t = tb.to_torch(m)
    if fmt == "csc":
        compressed, plain = t.ccol_indices(), t.row_indices()
    else:
        compressed, plain = t.crow_indices(), t.col_indices()
    np.testing.assert_array_equal(compressed.numpy(), m.indptr)
    np.testing.assert_array_equal(plain.numpy(), m.indices)
    assert compressed.dtype == torch.int64


@pytest.mark.parametrize("fmt", FORMATS)
def test_scipy_sparse_to_numpy_densifies(fmt):
    """to_numpy densifies every format into a plain ndarray (a counted copy)."""
    m, dense = _sparse(fmt, "matrix")
    out = tb.to_numpy(m)
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, dense)
    with pytest.raises(tb.CopyRequiredError, match=r"sparse"):
        tb.to_numpy(m, copy=False)


def test_scipy_sparse_dtype_applies_to_values():
    """dtype= casts the stored values of the torch sparse tensor."""
    m, dense = _sparse("coo", "array")
    t = tb.to_torch(m, dtype=torch.float32)
    assert t.dtype == torch.float32
    np.testing.assert_array_equal(t.to_dense().numpy(), dense.astype(np.float32))


def test_scipy_nd_coo_array():
    """An n-dimensional coo_array (newer scipy) keeps every index row."""
    sp = pytest.importorskip("scipy.sparse")
    dense = np.zeros((2, 3, 4))
    dense[1, 2, 3] = 7.0
    try:
        m = sp.coo_array(dense)
    except (TypeError, ValueError):
        pytest.skip("this scipy has no n-dimensional coo_array")
    np.testing.assert_array_equal(tb.to_torch(m).to_dense().numpy(), dense)


# --------------------------------------------------------------------------------- h5py


@pytest.fixture
def h5file(tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["big_endian"] = np.arange(4, dtype=">f4")
        f["ints"] = np.array([[1, 2], [3, 4]], dtype=np.int16)
        f["text"] = "hello"
        g = f.create_group("group")
        g["x"] = np.array([0.5, -0.0])
        g.attrs["note"] = "metadata"
    f = h5py.File(tmp_path / "data.h5", "r")
    yield f
    f.close()


def test_h5_dataset_is_read_native_and_exact(h5file):
    """A big-endian dataset is read into native byte order, values exact, one counted copy."""
    ds = h5file["big_endian"]
    t = tb.to_torch(ds)
    assert t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), np.arange(4, dtype=np.float32))
    plan = tb.explain(ds, to="torch")
    assert plan.copies == 1 and any("read as native" in s for s in plan.steps)
    with pytest.raises(tb.CopyRequiredError, match=r"HDF5 dataset"):
        tb.to_numpy(ds, copy=False)


def test_h5_group_and_file_are_plain_dicts(h5file):
    """A Group or File is a plain dict of its members, read as arrays; attributes left out."""
    out = tb.to_numpy(h5file["group"])
    assert type(out) is dict and list(out) == ["x"]
    np.testing.assert_array_equal(out["x"], np.array([0.5, -0.0]))
    assert np.signbit(out["x"][1])
    with pytest.raises(tb.UnsupportedInputError, match=r"'/text'.*asstr"):
        tb.to_numpy(h5file)  # the file holds a string dataset
    del_text = {k: h5file[k] for k in ("big_endian", "ints", "group")}
    out = tb.to_torch(del_text)
    assert torch.equal(out["ints"], torch.tensor([[1, 2], [3, 4]], dtype=torch.int16))


def test_h5_string_dataset_fix_works(h5file):
    """The suggested read of a string dataset (ds.asstr()[()]) works."""
    assert h5file["text"].asstr()[()] == "hello"


def test_h5_closed_file_is_one_conversion_error(tmp_path):
    """A dataset of a closed file raises one ConversionError, not h5py's own error."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f["d"] = np.ones(3)
        ds = f["d"]
    with pytest.raises(tb.ConversionError):
        tb.to_numpy(ds)


def test_h5_file_of_numbers_is_a_nested_plain_dict(tmp_path):
    """A whole HDF5 File converts to nested plain dicts of exact arrays (to_torch and to_python)."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "n.h5", "w") as f:
        f["a"] = np.array([1.5, -2.0], dtype=">f8")
        f.create_group("g")["b"] = np.arange(3, dtype=np.uint16)
    with h5py.File(tmp_path / "n.h5", "r") as f:
        out = tb.to_torch(f)
        assert type(out) is dict and type(out["g"]) is dict
        assert torch.equal(out["a"], torch.tensor([1.5, -2.0], dtype=torch.float64))
        assert torch.equal(out["g"]["b"], torch.tensor([0, 1, 2], dtype=torch.uint16))
        assert tb.to_python(f) == {"a": [1.5, -2.0], "g": {"b": [0, 1, 2]}}


def test_shares_memory_reads_foreign_objects_through_their_adapter():
    """shares_memory answers for a DataArray (its values) and a sparse matrix (never shared)."""
    xr = pytest.importorskip("xarray")
    sp = pytest.importorskip("scipy.sparse")
    da = xr.DataArray(np.arange(4.0))
    assert tb.shares_memory(tb.to_torch(da), da)
    assert not tb.shares_memory(tb.to_torch(da, copy=True), da)
    m = sp.csr_matrix(np.eye(2))
    assert not tb.shares_memory(tb.to_numpy(m), m)
