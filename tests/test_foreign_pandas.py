"""pandas objects (SPEC: "Objects from the rest of the ecosystem"), with the real library:
values exactly as pandas holds them, missing values and non-numeric columns refused with a fix
that works when applied."""

import numpy as np
import pytest
import torch

import tensorbridge as tb

pd = pytest.importorskip("pandas")


@pytest.mark.parametrize(
    ("values", "dtype", "numpy_dtype"),
    [
        pytest.param([2**53 + 1, -3], "Int64", np.int64, id="Int64"),
        pytest.param([1, 2], "Int8", np.int8, id="Int8"),
        pytest.param([2**64 - 1, 0], "UInt64", np.uint64, id="UInt64"),
        pytest.param([0.1, -0.0], "Float64", np.float64, id="Float64"),
        pytest.param([0.5, 2.0], "Float32", np.float32, id="Float32"),
        pytest.param([True, False], "boolean", np.bool_, id="boolean"),
    ],
)
@pytest.mark.parametrize("func", ["to_numpy", "to_torch"])
def test_nullable_without_missing_values_is_exact(values, dtype, numpy_dtype, func):
    """A nullable column with no missing value becomes its NumPy dtype, bit for bit."""
    s = pd.Series(values, dtype=dtype)
    expected = np.array(values, dtype=numpy_dtype)
    out = getattr(tb, func)(s)
    got = out if isinstance(out, np.ndarray) else out.numpy()
    assert got.dtype == expected.dtype
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("dtype", ["Int64", "Float64", "boolean"])
@pytest.mark.parametrize("func", ["to_numpy", "to_torch"])
def test_missing_value_raises_lossy_and_the_fix_works(dtype, func):
    """pd.NA raises LossyConversionError naming .to_numpy(dtype=..., na_value=...), which works."""
    s = pd.Series([1, None], dtype=dtype)
    with pytest.raises(tb.LossyConversionError, match=r"1 missing value.*na_value=np\.nan") as e:
        getattr(tb, func)(s)
    assert "s.to_numpy(dtype='float64', na_value=np.nan)" in str(e.value)
    fixed = getattr(tb, func)(s.to_numpy(dtype="float64", na_value=np.nan))
    got = fixed if isinstance(fixed, np.ndarray) else fixed.numpy()
    assert got[0] == 1.0 and np.isnan(got[1])


def test_missing_value_in_a_frame_names_the_column():
    """A DataFrame's missing value is reported with its column, and the frame-level fix works."""
    df = pd.DataFrame({"ok": [1.0, 2.0], "ids": pd.array([7, None], dtype="Int64")})
    with pytest.raises(tb.LossyConversionError, match=r"column 'ids' of pandas\.DataFrame") as e:
        tb.to_torch(df)
    assert "df.to_numpy(dtype='float64', na_value=np.nan)" in str(e.value)
    fixed = tb.to_torch(df.to_numpy(dtype="float64", na_value=np.nan))
    assert fixed.shape == (2, 2) and torch.isnan(fixed[1, 1])


def test_nat_in_a_datetime_column_is_lossy_and_the_fix_works():
    """NaT is a missing value too: refused, and .to_numpy(dtype='int64', na_value=0) works."""
    s = pd.Series(pd.to_datetime(["2020-01-01", None]))
    fix = r"NaT.*to_numpy\(dtype='int64', na_value=0\)"
    with pytest.raises(tb.LossyConversionError, match=fix):
        tb.to_numpy(s, dtype="int64")
    out = tb.to_numpy(s.to_numpy(dtype="int64", na_value=0))
    assert out[1] == 0 and out.dtype == np.int64


@pytest.mark.parametrize("func", ["to_numpy", "to_torch"])
def test_categorical_series_suggests_cat_codes(func):
    """A categorical Series names .cat.codes, and converting the codes works."""
    s = pd.Series(["b", "a", "b"], dtype="category")
    with pytest.raises(tb.UnsupportedInputError, match=r"categorical.*s\.cat\.codes"):
        getattr(tb, func)(s)
    out = tb.to_numpy(s.cat.codes)
    np.testing.assert_array_equal(out, np.array([1, 0, 1], dtype=np.int8))


def test_categorical_column_is_named_and_the_fix_works():
    """A DataFrame's categorical column is named (not 'an object ndarray'); its codes convert."""
    df = pd.DataFrame({"x": [1.5, 2.5], "c": pd.Categorical(["u", "v"])})
    with pytest.raises(tb.UnsupportedInputError, match=r"column 'c' of pandas\.DataFrame") as e:
        tb.to_torch(df)
    assert "df['c'].cat.codes" in str(e.value) and "object" not in str(e.value)
    out = tb.to_torch(df.assign(c=df["c"].cat.codes))
    assert torch.equal(out, torch.tensor([[1.5, 0.0], [2.5, 1.0]], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [object, "string", "str"])
def test_string_column_is_refused_naming_it_and_the_fix_works(dtype):
    """Strings are refused naming the column; the suggested category codes convert."""
    df = pd.DataFrame({"n": [1, 2], "s": pd.Series(["a", "b"], dtype=dtype)})
    with pytest.raises(tb.UnsupportedInputError, match=r"column 's'.*strings") as e:
        tb.to_numpy(df)
    assert "df['s'].astype('category').cat.codes" in str(e.value)
    codes = tb.to_numpy(df["s"].astype("category").cat.codes)
    np.testing.assert_array_equal(codes, [0, 1])


def test_object_column_of_numbers_suggests_to_numeric():
    """An object column of Python numbers names pd.to_numeric, which fixes it."""
    s = pd.Series([1, 2.5], dtype=object)
    with pytest.raises(tb.UnsupportedInputError, match=r"pd\.to_numeric\(s\)"):
        tb.to_torch(s)
    out = tb.to_torch(pd.to_numeric(s))
    assert torch.equal(out, torch.tensor([1.0, 2.5], dtype=torch.float64))


def test_tz_aware_datetimes_are_refused_and_the_fix_works():
    """Time-zone-aware datetimes are refused naming the column; the suggested int64 form works."""
    s = pd.Series(pd.date_range("2020-01-01", periods=2, tz="Europe/Paris"))
    with pytest.raises(tb.UnsupportedInputError, match=r"time-zone-aware") as e:
        tb.to_torch(s)
    assert "s.dt.tz_convert(None).astype('int64')" in str(e.value)
    out = tb.to_torch(s.dt.tz_convert(None).astype("int64"))
    expected = s.dt.tz_convert(None).to_numpy().astype("int64")
    np.testing.assert_array_equal(out.numpy(), expected)


def test_numeric_series_and_index_share_memory():
    """A NumPy-backed Series or Index converts as a view of its values (to_numpy)."""
    s = pd.Series(np.arange(5.0))
    out = tb.to_numpy(s)
    assert np.shares_memory(out, s.to_numpy())
    plan = tb.explain(s)
    assert plan.copies == 0 and plan.shares_memory
    idx = pd.Index(np.arange(4, dtype=np.int32))
    np.testing.assert_array_equal(tb.to_torch(idx).numpy(), np.arange(4, dtype=np.int32))


def test_single_dtype_frame_is_a_view_and_mixed_frame_a_counted_copy():
    """One-block frames are viewed (copy=False works); mixed frames copy, and copy=False says so."""
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    out = tb.to_numpy(df, copy=False)
    assert np.shares_memory(out, df["a"].to_numpy())
    mixed = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    plan = tb.explain(mixed, to="torch")
    assert plan.copies >= 1 and not plan.shares_memory
    with pytest.raises(tb.CopyRequiredError, match=r"cannot share its memory"):
        tb.to_torch(mixed, copy=False)
    expected = np.array([[1.0, 0.5], [2.0, 1.5]])
    np.testing.assert_array_equal(tb.to_torch(mixed).numpy(), expected)


def test_nullable_copy_false_is_refused():
    """A nullable column is read into a new array: copy=False raises CopyRequiredError."""
    with pytest.raises(tb.CopyRequiredError, match=r"not one NumPy array"):
        tb.to_numpy(pd.Series([1, 2], dtype="Int64"), copy=False)


def test_int_and_bool_columns_promote_as_numpy_does():
    """An int and a bool column combine to int64 (np.result_type), not to an object array."""
    df = pd.DataFrame({"i": [5, 6], "b": [True, False]})
    out = tb.to_numpy(df)
    np.testing.assert_array_equal(out, np.array([[5, 1], [6, 0]], dtype=np.int64))


def test_frame_inside_a_container_names_path_and_column():
    """An error inside a container names the path and the column."""
    batch = {"frame": pd.DataFrame({"c": pd.Categorical(["x"])})}
    with pytest.raises(tb.UnsupportedInputError, match=r'obj\["frame"\].*column \'c\''):
        tb.to_torch(batch)


def test_dtype_argument_applies_to_pandas_values():
    """dtype= casts a frame's values like any array's."""
    df = pd.DataFrame({"a": [1, 2]})
    out = tb.to_torch(df, dtype=torch.float32)
    assert out.dtype == torch.float32 and out.tolist() == [[1.0], [2.0]]


def test_sparse_column_is_densified_exactly():
    """A pandas SparseDtype column converts to its dense values."""
    s = pd.Series([1.0, 0.0, 2.5], dtype=pd.SparseDtype("float64", 0.0))
    np.testing.assert_array_equal(tb.to_numpy(s), np.array([1.0, 0.0, 2.5]))


def test_period_column_names_no_fix_that_fails():
    """Periods are refused without suggesting pd.to_numeric (which cannot parse them)."""
    s = pd.Series(pd.period_range("2020-01-01", periods=2, freq="D"))
    with pytest.raises(tb.UnsupportedInputError, match="Python objects") as e:
        tb.to_numpy(s)
    assert "to_numeric" not in str(e.value)


@pytest.mark.parametrize(
    ("make", "fix"),
    [
        pytest.param(lambda: pd.Categorical(["a", "b"]), lambda x: x.codes, id="Categorical"),
        pytest.param(
            lambda: pd.CategoricalIndex(["a", "b"]), lambda x: x.codes, id="CategoricalIndex"
        ),
        pytest.param(
            lambda: pd.date_range("2020-01-01", periods=2, tz="UTC"),
            lambda x: x.tz_convert(None).astype("int64"),
            id="DatetimeIndex-tz",
        ),
        pytest.param(
            lambda: pd.Index(["a", "b"]), lambda x: x.astype("category").codes, id="str-Index"
        ),
    ],
)
def test_index_and_array_fixes_use_no_series_accessor(make, fix):
    """An Index or array is told .codes / .tz_convert (no .cat/.dt accessor), and that works."""
    x = make()
    with pytest.raises(tb.UnsupportedInputError) as e:
        tb.to_numpy(x)
    assert ".cat." not in str(e.value) and ".dt." not in str(e.value)
    assert tb.to_numpy(fix(x)).dtype.kind in "iu"
