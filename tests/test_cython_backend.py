"""Promises of the Cython backend beyond the contract every backend keeps.

The contract tests (``test_contract.py``) already run the Cython backend
against the NumPy reference, because it is listed in
``fastgd.available_backends()``. This module holds what is specific to it:
it is the Numba kernel's twin (agreement to 1e-12 in float64, not just 1e-9,
chunked batches included), it releases the GIL, its release and debug
builds are what they say, and an installation without the compiled
extension still imports and says how to build it. What it shares with the
other backends is tested with all of them: threads and hogwild in
``test_threads.py`` (every backend that declares them), read-only and
memmapped data and int64 row orders in ``test_copies.py``.
"""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastgd
from fastgd import backends
from fastgd._config import LOSSES, N_STATE_SLOTS, OPTIMIZERS, PENALTIES

from support import (
    N_SAMPLES,
    assert_same_fit,
    epoch_from_zero,
    kernel_inputs,
    make_problem,
)

CYTHON_MODULE = backends.BACKEND_MODULES["cython"]
needs_cython = pytest.mark.skipif(
    "cython" not in fastgd.available_backends(),
    reason="the Cython extension is not built (python -m pip install -e .)",
)
needs_twins = pytest.mark.skipif(
    not {"cython", "numba"} <= set(fastgd.available_backends()),
    reason="needs both compiled backends",
)

# The twins run the same operations in the same order; they differ only where
# a compiler reassociates a sum, so float64 agrees far below the 1e-9 the
# contract promises against the reference.
TWIN_RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-4}
SETTINGS = dict(lr=0.05, alpha=0.01, l1_ratio=0.5, epochs=3, random_state=0)


@pytest.fixture
def cython_kernels():
    return backends.get_backend("cython")


# --- the twin of the Numba kernel --------------------------------------------


@needs_twins
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no_intercept"])
@pytest.mark.parametrize("batch_size", [1, 7, N_SAMPLES], ids=lambda b: f"bs{b}")
@pytest.mark.parametrize("penalty", PENALTIES, ids=str)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("loss", LOSSES)
def test_cython_matches_numba_for_every_setting(
    loss, optimizer, penalty, batch_size, fit_intercept, dtype
):
    X, y = make_problem(loss, dtype)
    fits = {
        name: fastgd.fit(
            X, y, loss=loss, optimizer=optimizer, penalty=penalty, batch_size=batch_size,
            fit_intercept=fit_intercept, backend=name, **SETTINGS,
        )  # fmt: skip
        for name in ("cython", "numba")
    }
    assert fits["cython"].coef.dtype == np.dtype(dtype)
    assert_same_fit(fits["cython"], fits["numba"], TWIN_RTOL[np.dtype(dtype)])


@needs_twins
@pytest.mark.parametrize("schedule", ["invscaling", "exponential", "step"])
@pytest.mark.parametrize("drop_last", [False, True], ids=["keep_last", "drop_last"])
def test_cython_matches_numba_for_schedules_and_drop_last(schedule, drop_last):
    X, y = make_problem("huber", np.float64)
    fits = [
        fastgd.fit(
            X, y, loss="huber", optimizer="adamw", penalty="elasticnet", batch_size=4,
            schedule=schedule, step_size=1, drop_last=drop_last, backend=name, **SETTINGS,
        )  # fmt: skip
        for name in ("cython", "numba")
    ]
    assert_same_fit(fits[0], fits[1], TWIN_RTOL[np.dtype(np.float64)])


@needs_twins
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: np.dtype(d).name)
def test_cython_kernel_updates_state_in_place_like_numba(dtype, cython_kernels):
    # run_epoch itself, not only fit: same P, same optimizer state, same
    # (mean_loss, n_updates), for a multinomial model with several outputs.
    X, y, order, cfg = kernel_inputs(dtype, loss="multinomial")
    n_outputs = int(y.max()) + 1
    P, state, (loss, n_updates) = epoch_from_zero(cython_kernels, X, y, order, cfg, n_outputs)
    P_nb, state_nb, (loss_nb, n_updates_nb) = epoch_from_zero(
        backends.get_backend("numba"), X, y, order, cfg, n_outputs
    )
    rtol = TWIN_RTOL[np.dtype(dtype)]
    assert P.dtype == state.dtype == np.dtype(dtype)
    np.testing.assert_allclose(P, P_nb, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(state, state_nb, rtol=rtol, atol=rtol)
    assert loss == pytest.approx(loss_nb, rel=rtol)
    assert n_updates == n_updates_nb == -(-len(order) // cfg.batch_size)
    assert isinstance(n_updates, int) and isinstance(loss, float)


CHUNK_ROWS = 1024  # the kernels' CHUNK_ROWS (the same in both: the constants test below)
# Batches the kernels sum chunk by chunk: just over one chunk, two and a
# half chunks, and the whole data (four chunks).
CHUNKED_BATCH_SIZES = [1030, 2500, None]
N_CHUNKED = 3 * CHUNK_ROWS + 217


@needs_twins
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("batch_size", CHUNKED_BATCH_SIZES, ids=lambda b: f"bs{b}")
@pytest.mark.parametrize("loss", ["squared_error", "log_loss", "multinomial"])
def test_cython_chunked_batches_match_numba(loss, batch_size, dtype):
    X, y = make_problem(loss, dtype, n=N_CHUNKED)
    fits = [
        fastgd.fit(X, y, loss=loss, optimizer="adam", batch_size=batch_size, n_threads=2,
                   backend=name, **SETTINGS)  # fmt: skip
        for name in ("cython", "numba")
    ]
    assert_same_fit(fits[0], fits[1], TWIN_RTOL[np.dtype(dtype)])


@needs_twins
@pytest.mark.parametrize("name", ["PREFETCH_DISTANCE", "PREFETCH_L1_DISTANCE", "CHUNK_ROWS", "WAVE_CHUNKS", "ROW_BLOCK_MIN"])
def test_kernel_constants_are_the_numba_kernels(name):
    from fastgd.backends import _numba

    assert getattr(backends.get_backend("cython"), name) == getattr(_numba, name)


# --- the GIL ------------------------------------------------------------------


@needs_cython
def test_epoch_releases_the_gil(cython_kernels):
    # While a long epoch runs in a worker thread, this thread keeps running
    # Python code; with the GIL held it could not until the epoch returned.
    n, d = 300_000, 32
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    y = X.sum(axis=1)
    order = np.arange(n, dtype=np.int32)
    cfg = kernel_inputs(batch_size=1, optimizer="sgd", penalty=None, schedule="constant")[3]
    P = np.zeros((1, d + 1))
    state = np.zeros((N_STATE_SLOTS, 1, d + 1))
    started = threading.Event()
    span = {}

    def work():
        started.set()
        span["start"] = time.perf_counter()
        cython_kernels.run_epoch(X, y, order, P, state, cfg, 1e-3, 0)
        span["stop"] = time.perf_counter()

    worker = threading.Thread(target=work)
    worker.start()
    started.wait()
    ticks = []
    while worker.is_alive():
        ticks.append(time.perf_counter())
    worker.join()
    during = [t for t in ticks if span["start"] < t < span["stop"]]
    assert span["stop"] - span["start"] > 0.01, "epoch too short to tell"
    assert len(during) > 100, f"only {len(during)} ticks while the epoch ran"


# --- installations without the extension ------------------------------------


@pytest.fixture
def extension_missing(monkeypatch):
    """As if the package had been installed without a C compiler."""
    # None in sys.modules makes ``import`` raise ImportError, as a missing
    # extension module does, without touching the built file.
    monkeypatch.setitem(sys.modules, CYTHON_MODULE, None)


def test_without_extension_fastgd_imports_and_lists_the_rest():
    # A fresh interpreter, so that nothing imported earlier can help.
    code = (
        f"import sys; sys.modules[{CYTHON_MODULE!r}] = None; "
        "import fastgd; print(','.join(fastgd.available_backends()))"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastgd.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    usable = run.stdout.strip().split(",")
    assert "cython" not in usable
    assert "numpy" in usable


def test_without_extension_cython_backend_says_how_to_build_it(extension_missing):
    X, y = make_problem("squared_error", np.float64)
    with pytest.raises(ImportError, match=r"backend='cython'.*pip install") as info:
        fastgd.fit(X, y, backend="cython")
    assert "C compiler" in str(info.value)


@needs_cython
def test_available_backends_lists_compiled_before_reference():
    usable = fastgd.available_backends()
    assert usable.index("cython") < usable.index("numpy")
    if "numba" in usable:
        assert usable.index("numba") < usable.index("cython")


# --- the debug build -------------------------------------------------------------


@pytest.mark.skipif(
    os.environ.get("FASTGD_CYTHON_DEBUG") != "1",
    reason="debug build checks: build and test with FASTGD_CYTHON_DEBUG=1",
)
def test_debug_build_checks_bounds(cython_kernels):
    assert cython_kernels.DEBUG_BUILD, (
        "FASTGD_CYTHON_DEBUG=1 but the extension is a release build; rebuild with "
        "FASTGD_CYTHON_DEBUG=1 python -m pip install -e ."
    )
    X, y, order, cfg = kernel_inputs(batch_size=1)
    # A row index past the end, first reached where the epoch prefetches it.
    order = order[: 1 + cython_kernels.PREFETCH_DISTANCE].copy()
    order[-1] = len(X)
    with pytest.raises(IndexError):
        epoch_from_zero(cython_kernels, X, y, order, cfg)


@needs_cython
def test_release_build_is_the_default(cython_kernels):
    if os.environ.get("FASTGD_CYTHON_DEBUG") == "1":
        pytest.skip("debug build requested")
    assert not cython_kernels.DEBUG_BUILD
