"""Backends: interchangeable implementations of one epoch of training.

Each module that ``BACKEND_MODULES`` names keeps one contract
(``docs/architecture.md``, "The backend contract"):

- ``CAPABILITIES``: a frozenset of ``"dense"``, ``"csr"``, ``"float32"``,
  ``"float64"``, ``"threads"`` and ``"hogwild"``: what it can do;
- ``TOLERANCE``: ``{"float64": rtol, "float32": rtol}``, how close its
  results are to the NumPy reference's (0.0 for the reference itself);
- ``run_epoch(X, y, order, P, state, cfg, lr, t0, run=ExecutionConfig(),
  sample_weight=None)``:
  one fused epoch (contract in ``_reference.run_epoch``), over a dense
  ndarray or a scipy CSR X, which it hands to its module-level
  ``run_epoch_sparse(data, indices, indptr, y, order, P, state, cfg, lr, t0,
  run, sample_weight)`` (:func:`dispatch_layout`: the one place where the data layout picks
  the kernel);
- ``batch_gradient(X, y, rows, P, cfg, sample_weight=None) -> (loss_sum, G)`` and
  ``apply_update(P, G, state, cfg, lr, t)``: the batch-level seam whose
  Python loop over an epoch's batches ``run_epoch`` equals.

``sample_weight`` is None (unweighted) or a float64 C-contiguous array of
weights: one per row, or, for K > 1 independent outputs (any loss but
multinomial), one per row and output, indexed like a multi-output y
(``i*K + k``; ``_validation.output_weights``). Each loss and derivative is
multiplied by its weight (``_reference.losses``).

They are imported lazily, so ``import fastgd`` does not pay for Numba's
import or JIT.
"""

import functools
import importlib
import sys

import numpy as np

# name -> module; the order is the order of ``available_backends()``.
BACKEND_MODULES = {
    "numba": "fastgd.backends._numba_backend",
    "cython": "fastgd.backends._cython_backend",
    "numpy": "fastgd.backends._reference",
}

_HOW_TO_INSTALL = {
    "numba": "install it with `python -m pip install numba`",
    "cython": (
        "the compiled extension fastgd.backends._cython_kernels is missing: "
        "reinstall fastgd with a C compiler available, `python -m pip install .` "
        "(or `python -m pip install -e .` in a checkout)"
    ),
}


def get_backend(name):
    """Return the module implementing backend ``name`` (already validated)."""
    try:
        return importlib.import_module(BACKEND_MODULES[name])
    except ImportError as exc:
        hint = _HOW_TO_INSTALL.get(name, "")
        raise ImportError(
            f"backend={name!r} is not usable here ({exc}); {hint}".rstrip("; ")
        ) from exc


def available_backends():
    """Names of the backends that can be used in this installation.

    Returns
    -------
    list of str
        A subset of ``("numba", "cython", "numpy")``, in that order.
    """
    usable = []
    for name in BACKEND_MODULES:
        try:
            get_backend(name)
        except ImportError:
            continue
        usable.append(name)
    return usable


def dispatch_layout(csr_name):
    """Make a backend function of a dense X take a scipy CSR X too.

    The decorated function is called as it is for an ndarray X; for a CSR X
    the call goes to the function named ``csr_name`` in the same module,
    looked up at call time, as ``(X.data, X.indices, X.indptr, *rest)``.
    Written once here, so that every backend picks its kernel by the data
    layout in the same way.

    Parameters
    ----------
    csr_name : str
        Name of the module-level CSR twin, e.g. ``"run_epoch_sparse"``.
    """

    def decorate(dense):
        module = sys.modules[dense.__module__]

        @functools.wraps(dense)
        def by_layout(X, *args, **kwargs):
            if isinstance(X, np.ndarray):
                return dense(X, *args, **kwargs)
            return getattr(module, csr_name)(X.data, X.indices, X.indptr, *args, **kwargs)

        return by_layout

    return decorate
