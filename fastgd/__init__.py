"""fastgd: linear models fitted by mini-batch gradient descent, fast.

One engine covers batch, stochastic and mini-batch gradient descent; every
batch of an epoch runs inside one compiled call (Numba by default), checked
against a plain NumPy reference.

Public names
------------
fit
    Fit a model and return a :class:`FitResult`.
FitResult
    Parameters, history and prediction of a fit.
available_backends
    The backends usable in this installation.
"""

from ._engine import fit
from ._result import FitResult
from .backends import available_backends

__version__ = "0.1.0"
__all__ = ["FitResult", "available_backends", "fit", "__version__"]
