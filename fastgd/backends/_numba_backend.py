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

import functools
import os

import numba
from numba.np.ufunc import parallel

from . import _numba, _numba_sparse
from ._cpu import GNU_OPENMP, define_contract, note_openmp_threads

CAPABILITIES = frozenset({"dense", "csr", "float32", "float64", "threads", "hogwild"})
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}


@functools.cache
def thread_runtime():
    """The runtime Numba's parallel kernels run on: ``"gnu-openmp"``, ``"tbb"``, ``"workqueue"``...

    Numba's threading layer, with its OpenMP named by vendor (``"gnu-openmp"``
    for libgomp, ``"openmp"`` for another). Picks the layer now if no
    parallel kernel has yet (``get_num_threads`` does, as the first kernel
    would; picking starts no GNU OpenMP thread, measured in a forked child
    where a parallel region would hang). Fixed once picked, so cached; a
    forked child inherits the layer with the cache.
    """
    numba.get_num_threads()
    layer = numba.threading_layer()
    if layer == "omp":
        from numba.np.ufunc import omppool

        # Unknown vendor: GNU, whose limits are the stricter.
        vendor = getattr(omppool, "openmp_vendor", "GNU")
        return GNU_OPENMP if vendor == "GNU" else "openmp"
    return layer


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
