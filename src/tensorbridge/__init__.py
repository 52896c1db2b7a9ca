"""tensorbridge: move data between PyTorch and NumPy so that it always works, or says why not.

>>> import torch, tensorbridge as tb
>>> tb.to_numpy(torch.ones(2, requires_grad=True))
array([1., 1.], dtype=float32)
"""

from ._api import explain, to_numpy, to_torch
from ._collate import collate
from ._errors import ConversionError, CopyRequiredError, LossyConversionError, UnsupportedInputError
from ._memory import shares_memory
from ._plan import Plan
from ._python import item, to_python

__all__ = [
    "ConversionError",
    "CopyRequiredError",
    "LossyConversionError",
    "Plan",
    "UnsupportedInputError",
    "collate",
    "explain",
    "item",
    "shares_memory",
    "to_numpy",
    "to_python",
    "to_torch",
]

__version__ = "0.1.0"
