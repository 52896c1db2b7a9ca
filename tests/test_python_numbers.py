"""Python numbers and lists (SPEC: "Dtypes and autograd"): the target library's defaults with no
dtype; built directly in an explicit dtype, never through a narrower one."""

import json
import math
import struct

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tensorbridge as tb


def test_list_in_float64_is_exact():
    """to_torch([0.1], dtype=torch.float64) is exactly 0.1, not 0.1 rounded through float32."""
    assert tb.to_torch([0.1], dtype=torch.float64).item() == 0.1
    assert tb.to_torch([0.1], float_dtype=torch.float64).item() == 0.1
    assert tb.to_numpy([0.1], dtype="float64")[0] == 0.1


def test_big_float_in_float64_is_not_inf():
    """to_torch(1e300, dtype=torch.float64) is 1e300, not inf."""
    assert tb.to_torch(1e300, dtype=torch.float64).item() == 1e300
    assert tb.to_torch([1e300, -1e300], float_dtype=torch.float64).tolist() == [1e300, -1e300]


def test_defaults_follow_each_library():
    """No dtype: NumPy's float64/int64, PyTorch's default float dtype/int64, as torch.tensor."""
    xs = [0.1, 2.5]
    assert tb.to_numpy(xs).dtype == np.asarray(xs).dtype
    assert tb.to_torch(xs).dtype == torch.tensor(xs).dtype
    assert tb.to_torch(xs).tolist() == torch.tensor(xs).tolist()
    assert tb.to_torch([1, 2]).dtype == torch.tensor([1, 2]).dtype
    assert tb.to_torch([1j]).dtype == torch.tensor([1j]).dtype
    assert tb.to_torch(True).dtype == torch.bool


@pytest.mark.parametrize(
    "items",
    [[np.float64(0.1)], [np.float32(1.5)], [np.complex128(1j)], [np.int32(1), np.int32(2)]],
    ids=["float64", "float32", "complex128", "int32"],
)
def test_lists_of_numpy_scalars_keep_their_dtype_as_torch_tensor_does(items):
    """A list of NumPy scalars keeps their dtype in to_torch, as torch.tensor keeps it."""
    assert tb.to_torch(items).dtype == torch.tensor(items).dtype


def test_integers_beyond_64_bits_with_float64():
    """to_numpy([2**70], dtype='float64') works, as np.asarray with that dtype does."""
    out = tb.to_numpy([2**70], dtype="float64")
    assert out.tolist() == np.asarray([2**70], dtype="float64").tolist()
    assert tb.to_torch([2**70], dtype=torch.float64).item() == float(2**70)


def test_integers_beyond_64_bits_without_dtype_name_a_new_dtype():
    """Without a dtype the error suggests dtype='float64', which then works."""
    with pytest.raises(tb.UnsupportedInputError, match=r"dtype='float64'"):
        tb.to_numpy([2**70])
    assert tb.to_numpy([2**70], dtype="float64")[0] == float(2**70)


def test_overflow_with_the_dtype_given_suggests_another_one():
    """An integer too big for the dtype given is refused with a fix that is not that dtype."""
    with pytest.raises(tb.UnsupportedInputError) as e:
        tb.to_numpy([2**70], dtype="int64")
    assert "dtype='float64'" in str(e.value) and "dtype=int64" in str(e.value)
    assert tb.to_numpy([2**70], dtype="float64")[0] == float(2**70)


def test_complex_list_to_a_real_dtype_is_lossy():
    """Complex numbers with a real dtype raise LossyConversionError (take .real)."""
    with pytest.raises(tb.LossyConversionError, match=r"\.real"):
        tb.to_torch([1 + 2j], dtype=torch.float64)


def test_float_dtype_leaves_int_lists_alone():
    """float_dtype applies to float lists only: an int list stays int64."""
    assert tb.to_torch([1, 2], float_dtype=torch.float16).dtype == torch.int64
    assert tb.to_numpy([1, 2], float_dtype="float16").dtype == np.int64


def test_list_starting_with_a_number_holding_tensors_is_read_as_numpy_reads_it():
    """A list that starts with a number and holds 0-d tensors is one array, as np.asarray reads it;
    a list of arrays stays a container of arrays."""
    out = tb.to_numpy([1.0, torch.tensor(2.0)])
    np.testing.assert_array_equal(out, np.asarray([1.0, 2.0]))
    parts = tb.to_torch([np.ones(2), np.ones(2)])
    assert type(parts) is list and len(parts) == 2


FLOAT_TARGETS = [
    (torch.float64, np.float64),
    (torch.float32, np.float32),
    (torch.float16, np.float16),
    (torch.bfloat16, ml_dtypes.bfloat16),
]


@settings(max_examples=150, deadline=None)
@given(
    xs=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=6),
    target=st.sampled_from(FLOAT_TARGETS),
)
def test_float_lists_are_built_directly_in_the_dtype(xs, target):
    """Every float of a list is rounded once, straight to the dtype asked (bit for bit as
    np.asarray(xs, dtype=...)), NaN payloads aside."""
    torch_dtype, numpy_dtype = target
    with np.errstate(all="ignore"):  # overflow to inf is the expected rounding
        expected = np.asarray(xs, dtype=numpy_dtype)
    got_np = tb.to_numpy(xs, dtype=numpy_dtype)
    got_t = tb.to_torch(xs, dtype=torch_dtype)
    with np.errstate(invalid="ignore"):
        same = lambda a: np.array_equal(  # noqa: E731
            np.asarray(a, dtype=np.float64), expected.astype(np.float64), equal_nan=True
        )
    assert same(got_np)
    assert same(tb.to_numpy(got_t))


@settings(max_examples=100, deadline=None)
@given(x=st.floats(allow_nan=False, width=64))
def test_float64_scalar_is_bit_exact(x):
    """A Python float in float64 keeps its bits, -0.0 included."""
    got = tb.to_torch(x, dtype=torch.float64).item()
    assert struct.pack("<d", got) == struct.pack("<d", x)


def test_to_python_round_trips_a_float_list_through_json():
    """to_python of a converted list gives the same floats back through json."""
    xs = [0.1, -0.0, 1e300, 5e-324]
    back = json.loads(json.dumps(tb.to_python(tb.to_numpy(xs))))
    assert back == xs and math.copysign(1, back[1]) == -1


@pytest.mark.parametrize("items", [[1.0, None], [1.0, "2.5"]], ids=["None", "str"])
def test_explicit_dtype_does_not_parse_non_numbers(items):
    """An explicit dtype never turns None into NaN or parses a string: the list is refused."""
    with pytest.raises(tb.UnsupportedInputError, match="holds a"):
        tb.to_numpy(items, dtype="float64")
    with pytest.raises(tb.UnsupportedInputError, match="holds a"):
        tb.to_torch(items, dtype=torch.float64)
