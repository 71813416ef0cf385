"""The Numba backend: the backend contract in front of the kernels of ``_numba.py``.

``_numba.py`` (dense X) and ``_numba_sparse.py`` (CSR X) hold the compiled
kernels; this module is what the engine and the drivers call (the contract
in ``fastgd/backends/__init__.py``). Its functions are those every CPU
backend puts in front of its kernels (:func:`._cpu.define_contract`): they
turn ``run`` into the kernels' :class:`~fastgd.backends._cpu.CpuExecution`,
pick the kernel by the data layout and by ``run.hogwild``, run on one
thread the epochs whose threads cannot run here (Numba's threading layer
decides: ``thread_runtime``), and offer the batch-level seam.
"""

import os

from numba.np.ufunc import parallel

from . import _numba, _numba_sparse
from ._cpu import GNU_OPENMP, define_contract, note_openmp_threads
from ._numba import thread_runtime

CAPABILITIES = frozenset({"dense", "csr", "float32", "float64", "threads", "hogwild"})
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}

define_contract(globals(), dense=_numba, sparse=_numba_sparse,
                thread_runtime=thread_runtime)  # fmt: skip


def _note_numba_openmp_before_fork():
    # Numba's omp layer kills a forked child's parallel region once the
    # parent has launched the layer, whoever did: a parallel=True function
    # of the user's, numba.get_num_threads()... not fastgd's threads alone.
    # Launched is _is_initialized, Numba's own flag, read, not changed.
    if getattr(parallel, "_is_initialized", False) and thread_runtime() == GNU_OPENMP:
        note_openmp_threads()


os.register_at_fork(before=_note_numba_openmp_before_fork)
