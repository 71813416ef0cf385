"""Training resumes bit for bit: from a pickle, in a fresh process, after a rollback.

A model's :class:`~fastgd._state.TrainState` holds everything its training has
accumulated (parameters, optimizer state, counters, the row-order seed), and
epoch ``e`` visits rows in an order derived from ``(seed, e)`` alone. So a fit
stopped after k epochs, pickled, loaded in another process and continued gives
the parameters of the uninterrupted fit exactly, for every shuffle mode, every
backend, ``fastgd.fit``'s state and both estimators (``warm_start`` fits and
``partial_fit`` calls, and a plain ``fit`` continued by ``partial_fit``), and
so does one whose epoch k + 1 diverged or was interrupted and rolled back.

Every fresh-process case runs in ONE child process (:data:`CHILD`): the parent
trains the first part and pickles it, the child continues each pickle, and
each case is then checked by its own parametrised test.
"""

import inspect
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastgd
from fastgd._engine import Trainer, advance
from fastgd._state import RowOrder, TrainState
from fastgd._validation import check_fit_settings, check_X, check_y
from fastgd.backends import get_backend

from support import ALL_BACKENDS, make_problem, wrap_run_epoch

SHUFFLES = (True, False, "batches")
# Adam (optimizer state and the update counter matter), a per-epoch schedule
# (the epoch counter matters), a penalty, and 45 rows in batches of 7 (a
# last, partial batch that 'batches' must keep last).
SETTINGS = dict(optimizer="adam", lr=0.05, schedule="exponential", decay=0.8,
                penalty="l2", alpha=0.01, batch_size=7, random_state=3)  # fmt: skip
EPOCHS, FIRST = 5, 2  # the whole run, and the epochs before the pickle
# "...-fit-then-partial": a plain fit (no warm_start) of k epochs, continued
# by partial_fit calls, against a fit of all the epochs with the same seed.
KINDS = ("fit", "regressor-warm", "regressor-partial", "regressor-fit-then-partial",
         "classifier-warm", "classifier-partial", "classifier-fit-then-partial")  # fmt: skip
# How the first part ends: after FIRST epochs, or with epoch FIRST + 1
# diverging or interrupted midway (and rolled back, so FIRST remain).
ENDINGS = ("stopped", "diverged", "interrupted")


def problem(kind):
    if kind.startswith("classifier"):
        return make_problem("multinomial", np.float64)
    return make_problem("squared_error", np.float64)


def settings(kind, backend, shuffle):
    extra = {"loss": "hinge"} if kind.startswith("classifier") else {}
    return dict(SETTINGS, backend=backend, shuffle=shuffle, **extra)


def fit_trainer(X, y, state, **given):
    """A Trainer set up as ``fastgd.fit`` sets up its own, continuing from ``state``.

    The settings not given take fit's defaults, and the validation is fit's.
    """
    fit_parameters = inspect.signature(fastgd.fit).parameters
    # The keyword-only parameters are the settings (sample_weight is data).
    values = {name: p.default for name, p in fit_parameters.items()
              if p.kind is p.KEYWORD_ONLY}  # fmt: skip
    values.update(given)
    X = check_X(X)
    cfg, run = check_fit_settings(**values, n_samples=X.shape[0])
    y, n_outputs = check_y(y, X.shape[0], values["loss"], X.dtype, values["n_classes"])
    trainer = Trainer(
        cfg, X.shape[1], n_outputs, X.dtype, loss=values["loss"], backend=values["backend"],
        random_state=None, lr=values["lr"], schedule=values["schedule"],
        decay=values["decay"], step_size=values["step_size"], gamma=values["gamma"],
        run=run, state=state,
    )  # fmt: skip
    return trainer, X, y


def estimator(kind, backend, shuffle, **extra):
    pytest.importorskip("sklearn")
    classifier = kind.startswith("classifier")
    Model = fastgd.MiniBatchClassifier if classifier else fastgd.MiniBatchRegressor
    return Model(**settings(kind, backend, shuffle), **extra)


def partial_fit(model, X, y):
    first = {"classes": np.unique(y)} if isinstance(model, fastgd.MiniBatchClassifier) else {}
    return model.partial_fit(X, y, **first)


def train(kind, backend, shuffle, epochs):
    """Train ``epochs`` epochs from zero; return what a user would pickle."""
    X, y = problem(kind)
    if kind == "fit":
        return fastgd.fit(X, y, epochs=epochs, **settings(kind, backend, shuffle)).state
    if kind.endswith("warm"):
        return estimator(kind, backend, shuffle, warm_start=True, epochs=epochs).fit(X, y)
    if kind.endswith("fit-then-partial"):
        return estimator(kind, backend, shuffle, epochs=epochs).fit(X, y)
    model = estimator(kind, backend, shuffle)
    for _ in range(epochs):
        partial_fit(model, X, y)
    return model


def train_to_failure(kind, backend, shuffle, ending):
    """Train towards EPOCHS epochs, epoch FIRST + 1 failing midway; return what survives."""
    X, y = problem(kind)
    # One backend call per epoch: a one-vs-rest classifier (hinge on three
    # classes) trains its three outputs in one pass.
    failing_call = FIRST + 1

    def run_epoch(call, real, X, y, order, P, state, *rest):
        if call != failing_call:
            return real(X, y, order, P, state, *rest)
        P += 1.0  # what an epoch cut short leaves behind
        state += 1.0
        if ending == "diverged":
            P[...] = np.nan
            return np.nan, 3
        raise KeyboardInterrupt

    error = fastgd.DivergenceError if ending == "diverged" else KeyboardInterrupt
    with pytest.MonkeyPatch.context() as monkeypatch:
        wrap_run_epoch(monkeypatch, backend, run_epoch)
        with pytest.raises(error) as caught:
            if kind == "fit":
                fastgd.fit(X, y, epochs=EPOCHS, **settings(kind, backend, shuffle))
            elif kind.endswith("warm"):
                model = estimator(kind, backend, shuffle, warm_start=True, epochs=EPOCHS)
                model.fit(X, y)
            elif kind.endswith("fit-then-partial"):
                model = estimator(kind, backend, shuffle, epochs=EPOCHS)
                model.fit(X, y)
            else:
                model = estimator(kind, backend, shuffle)
                for _ in range(EPOCHS):
                    partial_fit(model, X, y)
    if kind == "fit":
        state = caught.value.result.state
        assert state.n_epochs == FIRST
        return state
    assert model.n_iter_ == FIRST
    return model


def continue_training(kind, backend, shuffle, loaded, epochs):
    """Continue a loaded state or estimator by ``epochs`` epochs, as its user would."""
    X, y = problem(kind)
    if kind == "fit":
        trainer, X, y = fit_trainer(X, y, loaded, **settings(kind, backend, shuffle))
        for _ in range(epochs):
            trainer.epoch(X, y, shuffle=shuffle)
        return trainer.train_state
    if kind.endswith("warm"):
        return loaded.set_params(epochs=epochs).fit(X, y)
    for _ in range(epochs):
        partial_fit(loaded, X, y)
    return loaded


def outcome(trained):
    """Everything compared: each model's state, and an estimator's public attributes."""
    if isinstance(trained, TrainState):
        states, public = [trained], {}
    else:
        states = [trainer.train_state for trainer in trained._trainers]
        public = dict(coef=trained.coef_, intercept=trained.intercept_, n_iter=trained.n_iter_,
                      t=trained.t_, loss_curve=trained.loss_curve_)  # fmt: skip
    return dict(
        public,
        P=[state.P for state in states],
        optimizer_state=[state.optimizer_state for state in states],
        counters=[(state.n_epochs, state.n_updates, state.seed) for state in states],
    )


def assert_same_outcome(actual, expected):
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if key in ("P", "optimizer_state"):
            assert len(actual[key]) == len(value)
            for a, b in zip(actual[key], value):
                np.testing.assert_array_equal(a, b, strict=True, err_msg=key)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(actual[key], value, strict=True, err_msg=key)
        else:
            assert actual[key] == value, key


CASES = [
    (kind, backend, shuffle, ending)
    for kind in KINDS
    for backend in ALL_BACKENDS
    for shuffle in SHUFFLES
    for ending in ENDINGS
]


def case_id(case):
    kind, backend, shuffle, ending = case
    return f"{kind}-{backend}-shuffle={shuffle}-{ending}"


CHILD = """
import pickle, sys
sys.path.insert(0, sys.argv[1])
import test_resume
with open(sys.argv[2], "rb") as f:
    jobs = pickle.load(f)
done = {}
for name, (kind, backend, shuffle, blob, epochs) in jobs.items():
    loaded = pickle.loads(blob)
    trained = test_resume.continue_training(kind, backend, shuffle, loaded, epochs)
    done[name] = test_resume.outcome(trained)
with open(sys.argv[3], "wb") as f:
    pickle.dump(done, f)
"""


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """Run every case's first part here and its continuation in one fresh process.

    Returns ``{case id: (outcome continued in the child, uninterrupted outcome)}``.
    """
    folder = tmp_path_factory.mktemp("resume")
    jobs, expected = {}, {}
    for case in CASES:
        kind, backend, shuffle, ending = case
        if ending == "stopped":
            first = train(kind, backend, shuffle, FIRST)
        else:
            first = train_to_failure(kind, backend, shuffle, ending)
        jobs[case_id(case)] = (kind, backend, shuffle, pickle.dumps(first), EPOCHS - FIRST)
        expected[case_id(case)] = outcome(train(kind, backend, shuffle, EPOCHS))
    with open(folder / "jobs.pkl", "wb") as f:
        pickle.dump(jobs, f)
    tests = str(Path(__file__).resolve().parent)
    root = str(Path(fastgd.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        root, os.environ.get("PYTHONPATH")]))}  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-c", CHILD, tests, str(folder / "jobs.pkl"), str(folder / "done.pkl")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    with open(folder / "done.pkl", "rb") as f:
        done = pickle.load(f)
    return {name: (done[name], expected[name]) for name in jobs}


@pytest.mark.parametrize("case", CASES, ids=[case_id(case) for case in CASES])
def test_training_continued_in_a_fresh_process_is_bit_identical(resumed, case):
    actual, expected = resumed[case_id(case)]
    assert_same_outcome(actual, expected)


@pytest.mark.parametrize("shuffle", SHUFFLES)
@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_fit_of_one_epoch_pickled_and_partial_fit_once_is_fit_of_two(backend, kind, shuffle):
    """The report, as written: fit(epochs=1), pickle, load, partial_fit == fit(epochs=2)."""
    X, y = problem(kind)
    loaded = pickle.loads(pickle.dumps(estimator(kind, backend, shuffle, epochs=1).fit(X, y)))
    partial_fit(loaded, X, y)
    uninterrupted = estimator(kind, backend, shuffle, epochs=2).fit(X, y)
    assert_same_outcome(outcome(loaded), outcome(uninterrupted))


# --- in one process -----------------------------------------------------------------


@pytest.mark.parametrize("shuffle", SHUFFLES)
def test_a_driver_looping_over_advance_is_fastgd_fit(backend, shuffle):
    X, y = problem("fit")
    given = settings("fit", backend, shuffle)
    expected = fastgd.fit(X, y, epochs=EPOCHS, **given)
    trainer, X, y = fit_trainer(X, y, None, **dict(given, random_state=None))
    state = TrainState.zeros(X.shape[1], 1, X.dtype, SETTINGS["random_state"])
    orders = RowOrder()
    for epoch in range(EPOCHS):
        loss, _ = advance(state, X, y, get_backend(backend), trainer.cfg, trainer.run,
                          shuffle=shuffle, lr_schedule=trainer.learning_rate,
                          orders=orders if epoch % 2 else None)  # fmt: skip
        assert loss == expected.loss_history[epoch]
    assert_same_outcome(outcome(state), outcome(expected.state))


@pytest.mark.parametrize("ending", ["diverged", "interrupted"])
def test_advance_leaves_the_state_as_it_was_when_the_epoch_fails(monkeypatch, backend, ending):
    X, y = problem("fit")
    trainer, X, y = fit_trainer(X, y, None, **settings("fit", backend, True))
    state = trainer.train_state
    trainer.epoch(X, y)
    before = outcome(state.copy())

    def run_epoch(call, real, X, y, order, P, optimizer_state, *rest):
        P += 1.0
        optimizer_state += 1.0
        if ending == "diverged":
            return np.nan, 0
        raise KeyboardInterrupt

    wrap_run_epoch(monkeypatch, backend, run_epoch)
    error = fastgd.DivergenceError if ending == "diverged" else KeyboardInterrupt
    with pytest.raises(error):
        advance(state, X, y, trainer.kernels, trainer.cfg, trainer.run, shuffle=True,
                lr_schedule=trainer.learning_rate)  # fmt: skip
    assert_same_outcome(outcome(state), before)


@pytest.mark.parametrize("shuffle", SHUFFLES)
def test_an_epochs_row_order_depends_on_the_seed_and_its_number_alone(shuffle):
    n, batch_size, seed = 23, 5, 12345
    rows = np.arange(100, 100 + n)
    for subset, n_total in ((None, n), (rows, 200)):
        chained = RowOrder()
        orders = [chained.draw(seed, epoch, shuffle, batch_size, n_total, subset).copy()
                  for epoch in range(4)]  # fmt: skip
        for epoch in (3, 1):
            alone = RowOrder().draw(seed, epoch, shuffle, batch_size, n_total, subset)
            np.testing.assert_array_equal(alone, orders[epoch], strict=True)
        base = np.arange(n) if subset is None else rows
        for order in orders:
            np.testing.assert_array_equal(np.sort(order), base)
            if shuffle == "batches":  # the short last batch stays last
                np.testing.assert_array_equal(order[-(n % batch_size) :], base[-(n % batch_size) :])
        if shuffle is False:
            assert all(np.array_equal(order, base) for order in orders)
        else:
            assert not np.array_equal(orders[0], orders[1])
            assert not np.array_equal(
                RowOrder().draw(seed + 1, 0, shuffle, batch_size, n_total, subset), orders[0]
            )


def test_a_state_pickle_and_an_estimator_pickle_do_not_grow_with_n_samples():
    pytest.importorskip("sklearn")
    sizes = []
    for n in (50, 5000):
        X, y = make_problem("squared_error", np.float64, n=n)
        # Full batches: the same settings and counters for both sizes, so
        # that only what grew with n could make the pickles differ.
        given = dict(batch_size=None, epochs=3, random_state=0)
        state = fastgd.fit(X, y, **given).state
        model = fastgd.MiniBatchRegressor(**given).fit(X, y)
        sizes.append((len(pickle.dumps(state)), len(pickle.dumps(model))))
    assert sizes[0] == sizes[1]
    assert sizes[1][1] < 5000  # n_samples int32 indices alone would be 20 000 bytes
