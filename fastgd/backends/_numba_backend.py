"""The Numba backend: the backend contract in front of the kernels of ``_numba.py``.

``_numba.py`` (dense X) and ``_numba_sparse.py`` (CSR X) hold the compiled
kernels; this module is what the engine and the drivers call (the contract
in ``fastgd/backends/__init__.py``): it turns ``run`` into the kernels'
:class:`~fastgd.backends._cpu.CpuExecution`, picks the kernel by the data
layout and by ``run.hogwild``, and offers the batch-level seam. Python runs
here once per call, never once per batch of an epoch.
"""

import numpy as np

from .._config import ExecutionConfig
from . import _numba, _numba_sparse, dispatch_layout
from ._cpu import SERIAL, cpu_execution

CAPABILITIES = frozenset({"dense", "csr", "float32", "float64", "threads", "hogwild"})
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}


@dispatch_layout("run_epoch_sparse")
def run_epoch(X, y, order, P, state, cfg, lr, t0, run=ExecutionConfig()):
    """One epoch of mini-batch gradient descent; see ``_reference.run_epoch``.

    A dense X runs on ``run.n_threads`` threads, sharing each batch of more
    than ``_numba.CHUNK_ROWS`` rows (the same result for any count), or,
    with ``run.hogwild``, on lock-free threads that share the batches. A
    CSR X goes to :func:`run_epoch_sparse`.
    """
    execution = cpu_execution(run, cfg.batch_size)
    epoch = _numba.run_epoch_hogwild if run.hogwild else _numba.run_epoch
    return epoch(X, y, order, P, state, cfg, execution, lr, t0)


def run_epoch_sparse(data, indices, indptr, y, order, P, state, cfg, lr, t0,
                     run=ExecutionConfig()):  # fmt: skip
    """One epoch over the CSR rows ``order``; see ``_reference_sparse.run_epoch_sparse``."""
    return _numba_sparse.run_epoch_sparse(
        data, indices, indptr, y, order, P, state, cfg, cpu_execution(run, cfg.batch_size), lr,
        t0,
    )  # fmt: skip


@dispatch_layout("batch_gradient_sparse")
def batch_gradient(X, y, rows, P, cfg):
    """``(loss_sum, G)`` of the batch ``rows``; see ``_reference.batch_gradient``."""
    return _numba.batch_gradient(X, y, rows, P, cfg, SERIAL)


def batch_gradient_sparse(data, indices, indptr, y, rows, P, cfg):
    """:func:`batch_gradient` of the CSR matrix ``(data, indices, indptr)``."""
    return _numba_sparse.batch_gradient_sparse(data, indices, indptr, y, rows, P, cfg)


def apply_update(P, G, state, cfg, lr, t):
    """Update ``P`` and ``state`` in place from the mean gradient G; see ``_reference``."""
    # A float64 copy: the kernel adds the L2 term to its G in place.
    _numba.update_parameters(P, np.array(G, dtype=np.float64, order="C"), state, cfg, lr, t)
