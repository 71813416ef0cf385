"""Backends: interchangeable implementations of one epoch of training.

Each backend module exposes ``run_epoch(X, y, order, P, state, cfg, lr, t0)``
with the contract documented in ``_reference.run_epoch``, and its CSR twin
``run_epoch_sparse(data, indices, indptr, y, order, P, state, cfg, lr, t0)``
(``_reference_sparse.run_epoch_sparse``). They are imported
lazily, so ``import fastgd`` does not pay for Numba's import or JIT.
"""

import importlib

# name -> module; the order is the order of ``available_backends()``.
BACKEND_MODULES = {
    "numba": "fastgd.backends._numba",
    "cython": "fastgd.backends._cython_kernels",
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
