"""fastgd.dask: the Dask driver's promises, on small LocalClusters.

One thread-based cluster of 2 workers serves the module; the fault test has
its own process-based one (a worker is a process to kill there).
"""

import os
import signal

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import fastgd  # noqa: E402
import fastgd._dask_driver  # noqa: E402
import fastgd.dask  # noqa: E402
from fastgd import DivergenceError  # noqa: E402
from support import make_problem  # noqa: E402
from test_estimators import run_python  # noqa: E402

N = 2000


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:  # fmt: skip
        with distributed.Client(cluster) as client:
            yield client


def blocks(X, n_blocks):
    return da.from_array(X, chunks=(-(-X.shape[0] // n_blocks), X.shape[1]))


def training_tasks(stream):
    return [t for t in stream.data if "train_block" in t["key"] or "block_gradient" in t["key"]]


def assert_same_bits(a, b):
    assert np.array_equal(a.coef, b.coef) and np.array_equal(a.intercept, b.intercept)
    assert a.loss_history == b.loss_history
    assert a.n_updates == b.n_updates


def test_import_fastgd_does_not_import_dask():
    code = ("import sys, fastgd\n"
            "assert 'dask' not in sys.modules, 'import fastgd imported dask'\n"
            "assert 'distributed' not in sys.modules, 'import fastgd imported distributed'\n")  # fmt: skip
    run = run_python(code)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("loss, settings", [
    ("squared_error", dict(optimizer="sgd", batch_size=32)),
    ("log_loss", dict(optimizer="adam", batch_size=16, penalty="l2", shuffle="batches")),
    ("multinomial", dict(optimizer="momentum", schedule="invscaling", lr=0.1)),
])  # fmt: skip
def test_one_block_is_fastgd_fit_bit_for_bit(client, loss, settings):
    X, y = make_problem(loss, np.float64, n=N)
    settings = dict(epochs=3, random_state=7, **settings)
    expected = fastgd.fit(X, y, **settings)
    assert_same_bits(fastgd.dask.fit(blocks(X, 1), y, **settings), expected)


def test_one_block_with_the_local_scheduler_is_fastgd_fit(monkeypatch):
    # No current client: Dask's local scheduler runs the tasks.
    def no_client():
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed, "get_client", no_client)
    X, y = make_problem("squared_error", np.float64, n=N)
    expected = fastgd.fit(X, y, epochs=2, random_state=1)
    assert_same_bits(fastgd.dask.fit(X, y, epochs=2, random_state=1), expected)


@pytest.mark.parametrize("n_blocks", [2, 4])
@pytest.mark.parametrize("rounds", [1, 3])
def test_average_reaches_the_single_machine_optimum(client, n_blocks, rounds):
    # Well conditioned (standard normal features), noisy targets: the least
    # squares solution is the optimum; within 1e-2 of it after 20 epochs.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, 4))
    y = X @ np.array([1.5, -2.0, 0.7, 0.5]) + 0.5 + 0.1 * rng.standard_normal(N)
    optimum = np.linalg.lstsq(np.c_[X, np.ones(N)], y, rcond=None)[0]
    result = fastgd.dask.fit(blocks(X, n_blocks), y, lr=0.05, epochs=20, random_state=0,
                             rounds_per_epoch=rounds)  # fmt: skip
    np.testing.assert_allclose(np.r_[result.coef, result.intercept], optimum, atol=1e-2)
    assert result.n_epochs == 20


LOSSES = ("squared_error", "log_loss", "hinge", "multinomial")
OPTIMIZERS = ("sgd", "momentum", "adam")
PENALTIES = (None, "l2", "l1", "elasticnet")


@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_strategy_is_full_batch_fit_for_every_optimizer_and_penalty(client, loss):
    X, y = make_problem(loss, np.float64, n=600)
    X_blocks = blocks(X, 3)
    for optimizer in OPTIMIZERS:
        for penalty in PENALTIES:
            settings = dict(loss=loss, optimizer=optimizer, penalty=penalty, alpha=0.01,
                            lr=0.1, epochs=4, batch_size=None)  # fmt: skip
            expected = fastgd.fit(X, y, shuffle=False, **settings)
            result = fastgd.dask.fit(X_blocks, y, strategy="gradient", **settings)
            what = (optimizer, penalty)
            np.testing.assert_allclose(result.coef, expected.coef, rtol=1e-10, atol=1e-14,
                                       err_msg=str(what))  # fmt: skip
            np.testing.assert_allclose(result.intercept, expected.intercept, rtol=1e-10,
                                       atol=1e-14, err_msg=str(what))  # fmt: skip
            np.testing.assert_allclose(result.loss_history, expected.loss_history,
                                       rtol=1e-10, err_msg=str(what))  # fmt: skip
            assert result.n_updates == expected.n_updates == 4


def test_gradient_strategy_refuses_mini_batches_before_any_task(client):
    X, y = make_problem("squared_error", np.float64, n=100)
    with distributed.get_task_stream(client) as stream:
        with pytest.raises(ValueError, match=r"batch_size=32.*strategy='average'"):
            fastgd.dask.fit(blocks(X, 2), y, strategy="gradient", batch_size=32)
    assert stream.data == []


@pytest.mark.parametrize("strategy, batch_size", [("average", 16), ("gradient", None)])
def test_same_bits_run_after_run_and_on_one_or_two_workers(client, strategy, batch_size):
    X, y = make_problem("log_loss", np.float64, n=N)
    X_blocks = blocks(X, 4)
    settings = dict(loss="log_loss", optimizer="adam", strategy=strategy, batch_size=batch_size,
                    epochs=3, random_state=3)  # fmt: skip
    first = fastgd.dask.fit(X_blocks, y, **settings)
    assert_same_bits(fastgd.dask.fit(X_blocks, y, **settings), first)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:  # fmt: skip
        with distributed.Client(cluster, set_as_default=False) as one_worker:
            assert_same_bits(fastgd.dask.fit(X_blocks, y, client=one_worker, **settings), first)


def test_a_large_state_is_broadcast_by_one_held_task_and_gives_the_same_bits(client, monkeypatch):
    X, y = make_problem("log_loss", np.float64, n=N)
    settings = dict(loss="log_loss", optimizer="adam", batch_size=16, epochs=2, random_state=3)
    inline = fastgd.dask.fit(blocks(X, 4), y, **settings)
    monkeypatch.setattr(fastgd._dask_driver, "INLINE_BYTES", 0)
    with distributed.get_task_stream(client) as stream:
        held = fastgd.dask.fit(blocks(X, 4), y, **settings)
    assert sum("held" in t["key"] for t in stream.data) == 2  # one per round
    assert_same_bits(held, inline)


@pytest.fixture(scope="module")
def process_client():
    """A cluster of 2 worker processes (each restarted by its nanny when killed)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:  # fmt: skip
        with distributed.Client(cluster, set_as_default=False) as client:
            yield client


def kill_after_epoch_1(client, pid=None):
    """A callback that kills a worker process (``pid``, or the first one) after epoch 1."""
    killed = []

    def callback(epoch, loss, coef, intercept):
        if epoch == 1:
            target = pid or next(iter(client.run(os.getpid).values()))
            os.kill(target, signal.SIGKILL)
            killed.append(target)

    return callback, killed


@pytest.mark.parametrize("broadcast", ["inside the tasks", "by a held task"])
def test_a_worker_killed_mid_fit_changes_no_bit(process_client, monkeypatch, broadcast):
    if broadcast == "by a held task":
        monkeypatch.setattr(fastgd._dask_driver, "INLINE_BYTES", 0)
    X, y = make_problem("squared_error", np.float64, n=N)
    X_blocks = blocks(X, 4)
    settings = dict(epochs=4, random_state=5, batch_size=16, client=process_client)
    undisturbed = fastgd.dask.fit(X_blocks, y, **settings)
    callback, killed = kill_after_epoch_1(process_client)
    disturbed = fastgd.dask.fit(X_blocks, y, callback=callback, **settings)
    assert killed
    assert_same_bits(disturbed, undisturbed)


def test_data_that_cannot_be_recomputed_is_a_clear_error_not_a_partial_average(process_client):
    X, y = make_problem("squared_error", np.float64, n=500)
    pids = process_client.run(os.getpid)
    worker = sorted(pids)[0]
    # Scattered data has no graph: once its only worker dies it is gone.
    X_blocks = da.from_delayed(process_client.scatter(X, workers=[worker]), X.shape, X.dtype)
    y_blocks = da.from_delayed(process_client.scatter(y, workers=[worker]), y.shape, y.dtype)
    callback, _ = kill_after_epoch_1(process_client, pids[worker])
    with pytest.raises(RuntimeError, match="could not be recomputed.*nothing was averaged"):
        fastgd.dask.fit(X_blocks, y_blocks, epochs=3, callback=callback, client=process_client)


def test_divergence_in_a_block_keeps_the_last_finite_epoch(client):
    X, y = make_problem("squared_error", np.float64, n=400)
    with pytest.raises(DivergenceError) as info:
        fastgd.dask.fit(blocks(X, 2), y, lr=50.0, epochs=5, random_state=0)
    assert info.value.result is not None
    assert np.all(np.isfinite(info.value.result.coef))


# --- bad input: refused before any training task ------------------------------------


def untouchable(shape, dtype=np.float64):
    """A dask array whose compute raises a distinct error: refusing it must not compute it."""
    import dask

    def boom():
        raise AssertionError("computed")

    return da.from_delayed(dask.delayed(boom)(), shape=shape, dtype=dtype)


@pytest.mark.parametrize("X, y, settings, error, match", [
    (untouchable((10, 2), bool), np.zeros(10), {}, TypeError, "bool"),
    (untouchable((10, 2)), np.zeros(9), {}, ValueError, "inconsistent numbers of samples"),
    (untouchable((10,)), np.zeros(10), {}, ValueError, "2-D"),
    (untouchable((10, 2)), np.zeros(10), dict(loss="squred_error"), ValueError, "loss"),
    (untouchable((10, 2)), np.zeros(10), dict(rounds_per_epoch=0), ValueError,
     "rounds_per_epoch"),
    (untouchable((10, 2)), np.zeros(10), dict(strategy="sum"), ValueError, "strategy"),
    (untouchable((10, 2)), np.zeros(10), dict(client="tcp://x"), TypeError, "client"),
    (untouchable((10, 2)), np.zeros(10), dict(early_stopping=True), TypeError, "early_stopping"),
])  # fmt: skip
def test_what_needs_no_data_is_refused_without_computing_it(client, X, y, settings, error, match):
    with pytest.raises(error, match=match):
        fastgd.dask.fit(X, y, **settings)


@pytest.mark.parametrize("spoil, match", [
    (lambda X, y: (np.where(np.arange(X.shape[0])[:, None] == 5, np.nan, X), y),
     "Input X contains NaN"),
    (lambda X, y: (X, np.where(np.arange(y.shape[0]) == 7, 2, y)), "class codes"),
    (lambda X, y: (X, np.zeros_like(y)), "at least 2 classes"),
])  # fmt: skip
def test_bad_data_is_refused_in_the_checking_pass_before_any_training(client, spoil, match):
    X, y = make_problem("log_loss", np.float64, n=400)
    X, y = spoil(X, y)
    with distributed.get_task_stream(client) as stream:
        with pytest.raises(ValueError, match=match):
            fastgd.dask.fit(blocks(X, 4), da.from_array(y, chunks=100), loss="log_loss")
    assert training_tasks(stream) == []


def test_a_block_may_lack_a_class(client):
    X, y = make_problem("log_loss", np.float64, n=400)
    order = np.argsort(y, kind="stable")  # blocks sorted by label: some of one class
    result = fastgd.dask.fit(blocks(X[order], 4), y[order], loss="log_loss", epochs=1)
    assert np.all(np.isfinite(result.coef))


def test_column_chunks_are_merged_and_unknown_chunk_sizes_resolved(client):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, y = make_problem("squared_error", np.float64, n=N)
    settings = dict(epochs=2, random_state=2)
    expected = fastgd.dask.fit(da.from_array(X, chunks=(500, -1)), y, **settings)
    split_columns = da.from_array(X, chunks=(500, 2))
    assert_same_bits(fastgd.dask.fit(split_columns, y, **settings), expected)
    frame = dd.from_pandas(pd.DataFrame(X), npartitions=4)
    series = dd.from_pandas(pd.Series(y), npartitions=4)
    assert frame.npartitions == 4
    assert_same_bits(fastgd.dask.fit(frame, series, **settings), expected)
    unknown = frame.to_dask_array()
    assert np.isnan(unknown.shape[0])
    assert_same_bits(fastgd.dask.fit(unknown, y, **settings), expected)


# --- the estimators ---------------------------------------------------------------


def test_regressor_on_one_block_is_fastgd_fit_and_predicts_lazily(client):
    X, y = make_problem("squared_error", np.float64, n=N)
    model = fastgd.dask.MiniBatchRegressor(epochs=3, tol=None, random_state=4)
    model.fit(blocks(X, 1), da.from_array(y, chunks=N))
    expected = fastgd.fit(X, y, epochs=3, random_state=4)
    assert np.array_equal(model.coef_, expected.coef)
    X_blocks = blocks(X, 4)
    predicted = model.predict(X_blocks)
    assert isinstance(predicted, da.Array) and predicted.chunks[0] == X_blocks.chunks[0]
    np.testing.assert_array_equal(predicted.compute(), expected.predict(X))
    assert model.score(X_blocks, da.from_array(y, chunks=500)) == model.score(X, y)
    assert model.get_params()["strategy"] == "average"


def test_classifier_labels_probabilities_and_scores_blockwise(client):
    X, codes = make_problem("multinomial", np.float64, n=N)
    labels = np.array(["ant", "bee", "cat"])[codes]
    X_blocks = blocks(X, 4)
    model = fastgd.dask.MiniBatchClassifier(epochs=5, tol=None, random_state=0,
                                            rounds_per_epoch=2)  # fmt: skip
    model.fit(X_blocks, da.from_array(labels, chunks=500))
    assert model.classes_.tolist() == ["ant", "bee", "cat"]
    proba = model.predict_proba(X_blocks)
    assert isinstance(proba, da.Array) and proba.shape == (N, 3)
    np.testing.assert_allclose(proba.compute().sum(axis=1), 1.0)
    assert model.decision_function(X_blocks).shape == (N, 3)
    assert model.score(X_blocks, labels) > 0.8


def test_estimator_only_settings_are_refused(client):
    X, y = make_problem("squared_error", np.float64, n=100)
    with pytest.raises(ValueError, match="early_stopping=True"):
        fastgd.dask.MiniBatchRegressor(early_stopping=True).fit(blocks(X, 2), y)


# --- sample weights ---------------------------------------------------------------


def weights_of(n, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 3.0, n)


def test_weighted_one_block_is_weighted_fastgd_fit_bit_for_bit(client):
    X, y = make_problem("log_loss", np.float64, n=N)
    w = weights_of(N)
    settings = dict(loss="log_loss", optimizer="adam", epochs=3, random_state=7)
    expected = fastgd.fit(X, y, w, **settings)
    assert_same_bits(fastgd.dask.fit(blocks(X, 1), y, w, **settings), expected)
    # A number is that weight for every row, as in fastgd.fit.
    assert_same_bits(fastgd.dask.fit(blocks(X, 1), y, sample_weight=2.5, **settings),
                     fastgd.fit(X, y, 2.5, **settings))  # fmt: skip


@pytest.mark.parametrize("loss", ["squared_error", "multinomial"])
def test_weighted_gradient_strategy_is_weighted_full_batch_fit(client, loss):
    X, y = make_problem(loss, np.float64, n=600)
    w = weights_of(600, 1)
    w[:200] = 0.0  # a whole block of weight 0 is allowed: the others are not
    settings = dict(loss=loss, optimizer="momentum", penalty="l2", lr=0.1, epochs=4,
                    batch_size=None)  # fmt: skip
    expected = fastgd.fit(X, y, w, shuffle=False, **settings)
    result = fastgd.dask.fit(blocks(X, 3), y, da.from_array(w, chunks=150), strategy="gradient",
                             **settings)  # fmt: skip
    np.testing.assert_allclose(result.coef, expected.coef, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(result.loss_history, expected.loss_history, rtol=1e-10)


def test_weights_change_the_average_as_they_change_fit(client):
    # Weight 0 on a half of the rows: the average learns the other half's
    # model, as fastgd.fit does, and not the unweighted one.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, 3))
    first = np.arange(N) < N // 2
    y = np.where(first, X @ [1.0, 2.0, 3.0], X @ [-1.0, 0.0, 1.0])
    w = first.astype(float)
    settings = dict(lr=0.05, epochs=20, random_state=0)
    result = fastgd.dask.fit(blocks(X, 4), y, da.from_array(w, chunks=300), **settings)
    np.testing.assert_allclose(result.coef, [1.0, 2.0, 3.0], atol=2e-2)


@pytest.mark.parametrize("weights, error, match", [
    (np.zeros(400), ValueError, "zero for every row"),
    (np.r_[np.ones(250), -1.0, np.ones(149)], ValueError, "non-negative; got -1.0 at row 250"),
    (np.ones(300), ValueError, r"shape \(400,\)"),
    (np.array(["a"] * 400), TypeError, "real numbers"),
])  # fmt: skip
def test_bad_weights_are_refused_before_any_training(client, weights, error, match):
    X, y = make_problem("squared_error", np.float64, n=400)
    with distributed.get_task_stream(client) as stream:
        with pytest.raises(error, match=match):
            fastgd.dask.fit(blocks(X, 4), y, weights)
    assert training_tasks(stream) == []


def test_estimators_take_sample_weight(client):
    X, y = make_problem("squared_error", np.float64, n=N)
    w = weights_of(N, 2)
    model = fastgd.dask.MiniBatchRegressor(epochs=3, tol=None, random_state=4)
    model.fit(blocks(X, 1), y, sample_weight=w)
    assert np.array_equal(model.coef_, fastgd.fit(X, y, w, epochs=3, random_state=4).coef)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop",
                                       "adam", "adamw"])  # fmt: skip
@pytest.mark.parametrize("average, l1_method", [(False, "proximal"), (True, "cumulative")])
def test_the_average_moves_the_optimizer_slots_the_settings_write_and_no_other(
    optimizer, average, l1_method
):
    # What the blocks send back is slots_in_use's slots: any other slot a
    # fit writes would be lost in the average.
    from fastgd._config import N_STATE_SLOTS, slots_in_use
    from fastgd._settings import FIT, check_settings, kernel_records

    X, y = make_problem("squared_error", np.float64, n=300)
    settings = dict(optimizer=optimizer, average=average, penalty="l1", alpha=0.01,
                    l1_method=l1_method, epochs=2, random_state=0)  # fmt: skip
    state = fastgd.fit(X, y, **settings).state
    cfg, _ = kernel_records(check_settings(FIT, settings), n_samples=300)
    used = slots_in_use(cfg)
    others = [slot for slot in range(N_STATE_SLOTS) if slot not in used]
    assert np.all(state.optimizer_state[others] == 0)
    assert all(np.any(state.optimizer_state[slot] != 0) for slot in used)
