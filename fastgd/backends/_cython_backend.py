"""The Cython backend: the backend contract in front of the compiled ``_cython_kernels``.

``_cython_kernels.pyx`` holds the compiled kernels, dense and CSR (the twin
of ``_numba.py`` and ``_numba_sparse.py``); this module is what the engine
and the drivers call (the contract in ``fastgd/backends/__init__.py``), the
twin of ``_numba_backend.py``, with the same functions in front of its
kernels (:func:`._cpu.define_contract`). Importing it raises ImportError
where the extension was not built.
"""

from . import _cython_kernels
from ._cpu import GNU_OPENMP, define_contract

# The kernels' constants, for the tests that hold them to the Numba kernels'.
from ._cython_kernels import (  # noqa: F401
    CHUNK_ROWS,
    DEBUG_BUILD,
    PREFETCH_DISTANCE,
    PREFETCH_L1_DISTANCE,
    ROW_BLOCK_MIN,
    WAVE_CHUNKS,
)

CAPABILITIES = frozenset({"dense", "csr", "float32", "float64", "threads", "hogwild"})
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}


def thread_runtime():
    """GNU OpenMP, the runtime of the extension's ``prange`` loops, whatever Numba's layer.

    ``setup.py`` builds with ``-fopenmp``, which is libgomp for GCC. Where
    the compiler linked another OpenMP (Clang's libomp, fork-safe) the
    answer costs only the threads of a forked child; where it linked none,
    the loops run on one thread anyway.
    """
    return GNU_OPENMP


define_contract(globals(), dense=_cython_kernels, sparse=_cython_kernels,
                thread_runtime=thread_runtime)  # fmt: skip
