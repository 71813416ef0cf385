"""n_threads and parallel='hogwild': speed never changes the data-parallel result.

A batch of more than CHUNK_ROWS rows is cut into fixed chunks whose partial
gradients are added in chunk order, so any thread count gives the same bits;
hogwild's lock-free threads do not, and are tested for convergence instead.
Each promise runs on every backend that declares it in its ``CAPABILITIES``
(``threads``, ``hogwild``), through the ``threaded_backend`` and
``hogwild_backend`` fixtures.
"""

import numpy as np
import pytest

from fastgd._config import N_STATE_SLOTS
import fastgd
import support
from fastgd._synthetic import make_problem
from fastgd.backends import get_backend
from fastgd.backends._numba import CHUNK_ROWS, WAVE_CHUNKS
from support import (
    ALL_BACKENDS,
    REFERENCE_BACKEND,
    SHUFFLED_RUN,
    assert_same_fit,
    backends_with,
    epoch_from_zero,
    kernel_inputs,
    rtol_for,
)

# Just over one chunk, several chunks with a partial last one, and the whole
# data (four chunks). A batch of more than one wave of partial gradients
# (WAVE_CHUNKS) is run on run_epoch itself, below: the wave only bounds
# memory, the order of the sum is the chunks'.
BATCH_SIZES = [CHUNK_ROWS + 6, 2 * CHUNK_ROWS + 500, None]
N_SAMPLES = 3 * CHUNK_ROWS + 217

LOSS_TASKS = {"squared_error": "regression", "log_loss": "binary", "multinomial": "multiclass"}


def problem(loss, dtype, n=N_SAMPLES, d=7):
    X, y = make_problem(n, d, task=LOSS_TASKS[loss], n_classes=3,
                        dtype=dtype, random_state=2)  # fmt: skip
    return X, y


def assert_bit_identical(a, b):
    np.testing.assert_array_equal(a.coef, b.coef, strict=True)
    np.testing.assert_array_equal(a.intercept, b.intercept, strict=True)
    assert a.loss_history == b.loss_history


@pytest.mark.parametrize("batch_size", BATCH_SIZES, ids=["chunk+6", "2.5chunks", "all"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("loss", list(LOSS_TASKS))
def test_any_thread_count_gives_the_same_bits(threaded_backend, dtype, loss, optimizer,
                                             batch_size):  # fmt: skip
    X, y = problem(loss, dtype)
    settings = dict(loss=loss, optimizer=optimizer, batch_size=batch_size, epochs=3,
                    lr=0.05, penalty="elasticnet", alpha=1e-3, random_state=0,
                    backend=threaded_backend)  # fmt: skip
    one = fastgd.fit(X, y, n_threads=1, **settings)
    for n_threads in (2, 3, -1):
        assert_bit_identical(fastgd.fit(X, y, n_threads=n_threads, **settings), one)


@pytest.mark.parametrize("batch_size", BATCH_SIZES, ids=["chunk+6", "2.5chunks", "all"])
@pytest.mark.parametrize("loss", list(LOSS_TASKS))
def test_threaded_batches_match_the_reference(threaded_backend, dtype, loss, batch_size):
    X, y = problem(loss, dtype)
    settings = dict(loss=loss, optimizer="adam", batch_size=batch_size, epochs=2, lr=0.05,
                    random_state=0)  # fmt: skip
    result = fastgd.fit(X, y, backend=threaded_backend, n_threads=2, **settings)
    expected = fastgd.fit(X, y, backend=REFERENCE_BACKEND, n_threads=2, **settings)
    assert_same_fit(result, expected, rtol_for(dtype))


@pytest.mark.parametrize("n_threads", [2, 5])
@pytest.mark.parametrize("loss", ["squared_error", "multinomial"])
def test_threads_give_the_same_bits_over_several_waves(threaded_backend, loss, n_threads):
    # run_epoch itself, so that the threads run even where fit would cap
    # n_threads at a single CPU: 66 chunks are more than one wave of 64
    # partial gradients, and more threads than CPUs only take turns.
    n = (WAVE_CHUNKS + 1) * CHUNK_ROWS + 300
    X, y, order, cfg = kernel_inputs(loss=loss, batch_size=n, n=n)
    n_outputs = int(y.max()) + 1 if loss == "multinomial" else 1
    kernels = get_backend(threaded_backend)
    runs = [
        epoch_from_zero(kernels, X, y, order, cfg, n_outputs,
                        run=SHUFFLED_RUN._replace(n_threads=threads))  # fmt: skip
        for threads in (1, n_threads)
    ]
    (P1, state1, returned1), (P, state, returned) = runs
    np.testing.assert_array_equal(P, P1, strict=True)
    np.testing.assert_array_equal(state, state1, strict=True)
    assert returned == returned1


def test_the_reference_ignores_n_threads():
    X, y = problem("squared_error", np.float64)
    fits = [fastgd.fit(X, y, backend=REFERENCE_BACKEND, batch_size=2000, epochs=1,
                       random_state=0, n_threads=n) for n in (1, 2)]  # fmt: skip
    assert_bit_identical(*fits)


@pytest.mark.parametrize("batch_size", [1, 8, 32])
@pytest.mark.parametrize("loss", ["squared_error", "log_loss"])
def test_hogwild_converges_like_one_thread(hogwild_backend, loss, batch_size):
    # Both runs must settle where they lead for the gap to be hogwild's: with
    # a constant rate, batch size 1 ends in SGD's own noise (log_loss: gaps of
    # 0.08 median, over 0.1 in 11 of 100 runs), and this nearly separable
    # log_loss problem has no finite optimum without a penalty. A small L2
    # term makes the optimum one point and a 1/sqrt(t) rate settles on it
    # (largest gap 0.03 in 100 runs of each case).
    X, y = problem(loss, np.float64, n=4000)
    settings = dict(loss=loss, batch_size=batch_size, epochs=8, lr=0.5, schedule="invscaling",
                    power_t=0.5, penalty="l2", alpha=0.01, random_state=0,
                    backend=hogwild_backend)  # fmt: skip
    serial = fastgd.fit(X, y, **settings)
    hogwild = fastgd.fit(X, y, n_threads=2, parallel="hogwild", **settings)
    assert np.isfinite(hogwild.coef).all()
    assert hogwild.n_updates == serial.n_updates
    assert len(hogwild.loss_history) == 8
    # Lock-free updates perturb the path, not where it leads.
    assert hogwild.loss_history[-1] == pytest.approx(serial.loss_history[-1], rel=0.05, abs=1e-3)
    gap = np.linalg.norm(hogwild.coef - serial.coef) / np.linalg.norm(serial.coef)
    assert gap < 0.1


@pytest.mark.parametrize("batch_size", [1, 8])
def test_hogwild_matches_each_coefficient_of_one_thread(hogwild_backend, batch_size):
    # Coefficient by coefficient, on a regression whose true weights are all
    # far from 0 (support.TRUE_COEF): lock-free updates perturb the path,
    # not where it leads.
    X, y = support.make_problem("squared_error", np.float64, n=4000, d=8)
    settings = dict(batch_size=batch_size, epochs=6, lr=0.02, random_state=0,
                    backend=hogwild_backend)  # fmt: skip
    serial = fastgd.fit(X, y, **settings)
    hogwild = fastgd.fit(X, y, n_threads=2, parallel="hogwild", **settings)
    assert np.isfinite(hogwild.coef).all()
    assert hogwild.n_updates == serial.n_updates
    assert hogwild.loss_history[-1] == pytest.approx(serial.loss_history[-1], rel=0.05, abs=1e-3)
    np.testing.assert_allclose(hogwild.coef, serial.coef, rtol=0.05, atol=0.01)


def test_the_hogwild_kernel_counts_every_batch(hogwild_backend):
    # More workers than CPUs still split the batches between them, each once.
    X, y, order, cfg = kernel_inputs(batch_size=4, optimizer="sgd")
    P = np.zeros((1, X.shape[1] + 1))
    state = np.zeros((N_STATE_SLOTS,) + P.shape)
    loss, n_updates = get_backend(hogwild_backend).run_epoch(
        X, y, order, P, state, cfg, 0.05, 0, run=SHUFFLED_RUN._replace(n_threads=3, hogwild=1)
    )
    assert n_updates == -(-len(order) // 4)
    assert isinstance(n_updates, int) and np.isfinite(loss)
    assert np.isfinite(P).all() and (P != 0).any()


def test_hogwild_on_one_thread_is_the_serial_epoch(hogwild_backend):
    X, y = problem("squared_error", np.float64, n=500)
    settings = dict(batch_size=4, epochs=2, random_state=0, backend=hogwild_backend)
    assert_bit_identical(fastgd.fit(X, y, n_threads=1, parallel="hogwild", **settings),
                         fastgd.fit(X, y, **settings))  # fmt: skip


@pytest.mark.parametrize("backend", [name for name in ALL_BACKENDS
                                     if name not in backends_with("hogwild")])  # fmt: skip
def test_hogwild_needs_a_compiled_backend(backend):
    X, y = problem("squared_error", np.float64, n=50)
    with pytest.raises(ValueError, match="parallel='hogwild' needs a compiled backend"):
        fastgd.fit(X, y, backend=backend, parallel="hogwild", n_threads=2)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(n_threads=0), ValueError, "n_threads must be an integer >= 1, or -1 for every CPU; got 0"),
    (dict(n_threads=-2), ValueError, "got -2"),
    (dict(n_threads=1.5), TypeError, "n_threads must be an integer"),
    (dict(parallel="hogwlid"), ValueError, "Did you mean 'hogwild'?"),
    (dict(parallel=None), ValueError, "parallel=None is not supported; expected one of 'data', 'hogwild'"),
])  # fmt: skip
def test_bad_thread_settings_are_refused(backend, kwargs, error, message):
    X, y = problem("squared_error", np.float64, n=50)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        fastgd.fit(X, y, backend=backend, **kwargs)


@pytest.mark.parametrize("estimator", ["MiniBatchRegressor", "MiniBatchClassifier"])
def test_estimators_take_thread_settings(estimator):
    pytest.importorskip("sklearn")
    loss = "squared_error" if estimator == "MiniBatchRegressor" else "log_loss"
    X, y = problem(loss, np.float64)
    model = getattr(fastgd, estimator)
    fits = [model(batch_size=1500, epochs=2, tol=None, random_state=0, n_threads=n).fit(X, y)
            for n in (1, 2)]  # fmt: skip
    np.testing.assert_array_equal(fits[0].coef_, fits[1].coef_)
    hogwild = model(batch_size=4, epochs=2, tol=None, random_state=0, n_threads=2,
                    parallel="hogwild").fit(X, y)  # fmt: skip
    assert np.isfinite(hogwild.coef_).all()
    with pytest.raises(ValueError, match="n_threads"):
        model(n_threads=0).fit(X, y)
