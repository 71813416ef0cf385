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
DivergenceError
    Raised when training diverges; keeps the last finite result.
MiniBatchRegressor, MiniBatchClassifier, MiniBatchOneClassSVM
    scikit-learn estimators on the same engine (need scikit-learn, which is
    imported only when one of them is first used).
"""

from ._engine import fit
from ._errors import DivergenceError
from ._result import FitResult
from .backends import available_backends

__version__ = "0.1.0"
__all__ = [
    "DivergenceError",
    "FitResult",
    "MiniBatchClassifier",
    "MiniBatchOneClassSVM",
    "MiniBatchRegressor",
    "available_backends",
    "fit",
    "__version__",
]

# Loaded on first use (PEP 562), so that `import fastgd` neither needs nor
# pays for scikit-learn.
_ESTIMATORS = ("MiniBatchClassifier", "MiniBatchOneClassSVM", "MiniBatchRegressor")


def __getattr__(name):
    if name in _ESTIMATORS:
        try:
            from . import _estimators
        except ImportError as exc:
            if getattr(exc, "name", None) is None or not exc.name.startswith("sklearn"):
                raise
            raise ImportError(
                f"fastgd.{name} needs scikit-learn ({exc}); install it with "
                "`python -m pip install scikit-learn` (or reinstall fastgd with its "
                "extra, fastgd[sklearn]: `python -m pip install '.[sklearn]'` in its clone)."
            ) from exc
        return getattr(_estimators, name)
    raise AttributeError(f"module 'fastgd' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_ESTIMATORS))
