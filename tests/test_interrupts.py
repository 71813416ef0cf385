"""Ctrl-C keeps the work: the fit of the last completed epoch survives an interrupt.

``fastgd.fit`` re-raises the KeyboardInterrupt with that fit as ``exc.result``;
an estimator keeps it as its fitted attributes. A first SIGINT lets the epoch
in progress finish (a compiled epoch cannot be stopped midway), a second one
stops at once and drops the unfinished epoch.
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import fastgd

from support import assert_same_fit, make_problem, wrap_run_epoch

SETTINGS = dict(optimizer="adam", lr=0.05, batch_size=8, epochs=10, random_state=0)

needs_default_sigint = pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
    reason="SIGINT has a handler other than Python's default in this process",
)


def fit(backend, loss="squared_error", **overrides):
    X, y = make_problem(loss, np.float64)
    return fastgd.fit(X, y, loss=loss, backend=backend, **dict(SETTINGS, **overrides))


def interrupted(run):
    """Run ``run()``, which must raise KeyboardInterrupt; return the exception."""
    with pytest.raises(KeyboardInterrupt) as caught:
        run()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    return caught.value


# --- fastgd.fit ---------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["squared_error", "multinomial"])
def test_interrupt_from_a_callback_keeps_the_epochs_completed_so_far(backend, loss):
    def callback(epoch, *_):
        if epoch == 3:
            raise KeyboardInterrupt

    exc = interrupted(lambda: fit(backend, loss, callback=callback))
    result = exc.result
    assert result.n_epochs == 3
    assert len(result.loss_history) == len(result.epoch_seconds) == 3
    assert_same_fit(result, fit(backend, loss, epochs=3), rtol=0.0)


def test_interrupt_says_where_the_fit_is(backend):
    def callback(epoch, *_):
        if epoch == 2:
            raise KeyboardInterrupt

    exc = interrupted(lambda: fit(backend, callback=callback))
    if sys.version_info >= (3, 11):
        assert "interrupted after 2 completed epoch(s); their fit is on exc.result" in (
            " ".join(exc.__notes__)
        )


def test_interrupt_inside_an_epoch_drops_that_epoch(monkeypatch, backend):
    # As a Ctrl-C that lands inside the NumPy reference's Python batch loop:
    # the epoch has changed the parameters, then stops.
    def run_epoch(call, real, X, y, order, P, state, *rest):
        if call == 4:
            half_an_epoch(P, state)
            raise KeyboardInterrupt
        return real(X, y, order, P, state, *rest)

    wrap_run_epoch(monkeypatch, backend, run_epoch)
    exc = interrupted(lambda: fit(backend))
    monkeypatch.undo()
    assert exc.result.n_epochs == 3
    assert_same_fit(exc.result, fit(backend, epochs=3), rtol=0.0)


@needs_default_sigint
@pytest.mark.parametrize("at_epoch", [3, 10])  # 10: the last one
def test_first_sigint_lets_the_epoch_in_progress_finish(monkeypatch, capsys, backend,
                                                        at_epoch):  # fmt: skip
    def run_epoch(call, real, *args):
        if call == at_epoch:
            signal.raise_signal(signal.SIGINT)  # as if it came during the kernel
        return real(*args)

    seen = []
    wrap_run_epoch(monkeypatch, backend, run_epoch)
    exc = interrupted(lambda: fit(backend, callback=lambda epoch, *_: seen.append(epoch)))
    monkeypatch.undo()
    assert exc.result.n_epochs == at_epoch
    assert seen == list(range(1, at_epoch + 1))  # the finished epoch's callback ran
    assert_same_fit(exc.result, fit(backend, epochs=at_epoch), rtol=0.0)
    assert "training stops at the end of this epoch" in capsys.readouterr().err


@needs_default_sigint
def test_second_sigint_stops_at_once_and_drops_the_unfinished_epoch(monkeypatch, backend):
    def run_epoch(call, real, X, y, order, P, state, *rest):
        if call == 3:
            P -= 1.0  # half an epoch of work
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # raises KeyboardInterrupt here
            raise AssertionError("the second SIGINT did not stop training at once")
        return real(X, y, order, P, state, *rest)

    wrap_run_epoch(monkeypatch, backend, run_epoch)
    exc = interrupted(lambda: fit(backend))
    monkeypatch.undo()
    assert exc.result.n_epochs == 2
    assert_same_fit(exc.result, fit(backend, epochs=2), rtol=0.0)


@needs_default_sigint
def test_a_users_own_sigint_handler_is_left_alone(backend):
    def handler(signum, frame):
        pass

    during = []
    previous = signal.signal(signal.SIGINT, handler)
    try:
        fit(backend, epochs=2, callback=lambda *_: during.append(signal.getsignal(signal.SIGINT)))
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert during == [handler, handler]


@needs_default_sigint
def test_training_installs_its_handler_only_while_it_runs(backend):
    during = []
    fit(backend, epochs=2, callback=lambda *_: during.append(signal.getsignal(signal.SIGINT)))
    assert all(handler is not signal.default_int_handler for handler in during)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_training_outside_the_main_thread_leaves_signals_alone(backend):
    outcome = {}

    def work():
        def callback(epoch, *_):
            if epoch == 2:
                raise KeyboardInterrupt

        try:
            fit(backend, callback=callback)
        except KeyboardInterrupt as exc:
            outcome["n_epochs"] = exc.result.n_epochs

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert outcome == {"n_epochs": 2}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- the estimators -----------------------------------------------------------------


def estimators():
    sklearn = pytest.importorskip("sklearn")  # noqa: F841
    return fastgd.MiniBatchRegressor, fastgd.MiniBatchClassifier


def assert_same_model(model, expected):
    """Same public attributes, and the same engine state to continue from."""
    np.testing.assert_array_equal(model.coef_, expected.coef_, strict=True)
    np.testing.assert_array_equal(model.intercept_, expected.intercept_, strict=True)
    assert model.n_iter_ == expected.n_iter_
    assert model.t_ == expected.t_
    assert model.loss_curve_ == expected.loss_curve_
    for trainer, other in zip(model._trainers, expected._trainers, strict=True):
        np.testing.assert_array_equal(trainer.P, other.P, strict=True)
        np.testing.assert_array_equal(trainer.state, other.state, strict=True)


def half_an_epoch(P, state):
    """What an epoch cut short leaves behind: parameters and state it has changed."""
    P += 1.0
    state += 1.0


@pytest.mark.parametrize("kind, n_classes, loss", [
    ("regressor", None, "squared_error"), ("classifier", 2, "log_loss"),
    ("classifier", 3, "log_loss"), ("classifier", 3, "hinge"),  # one-vs-rest
])  # fmt: skip
def test_estimators_keep_the_completed_epochs_when_interrupted(backend, kind, n_classes, loss):
    Regressor, Classifier = estimators()
    X, y = make_problem("squared_error", np.float64)
    if n_classes:
        y = np.digitize(y, np.quantile(y, np.linspace(0, 1, n_classes + 1)[1:-1]))
    Model = Regressor if kind == "regressor" else Classifier
    settings = dict(SETTINGS, loss=loss, backend=backend)

    def callback(epoch, *_):
        if epoch == 3:
            raise KeyboardInterrupt

    model = Model(**settings, callback=callback)
    exc = interrupted(lambda: model.fit(X, y))
    assert_same_model(model, Model(**dict(settings, epochs=3)).fit(X, y))
    if sys.version_info >= (3, 11):
        assert "keeps the parameters of its 3 completed epoch(s)" in " ".join(exc.__notes__)


def test_one_vs_rest_interrupted_midway_rolls_all_its_outputs_back(monkeypatch, backend):
    _, Classifier = estimators()
    X, y = make_problem("multinomial", np.float64)
    settings = dict(SETTINGS, loss="hinge", backend=backend)

    def run_epoch(call, real, X, y, order, P, state, *rest):
        if call == 3:  # epoch 3, which trains the three outputs in one pass
            half_an_epoch(P, state)
            raise KeyboardInterrupt
        return real(X, y, order, P, state, *rest)

    wrap_run_epoch(monkeypatch, backend, run_epoch)
    model = Classifier(**settings)
    interrupted(lambda: model.fit(X, y))
    monkeypatch.undo()
    assert [trainer.result.n_epochs for trainer in model._trainers] == [2]
    assert_same_model(model, Classifier(**dict(settings, epochs=2)).fit(X, y))


def test_partial_fit_interrupted_keeps_the_previous_calls(monkeypatch, backend):
    Regressor, _ = estimators()
    X, y = make_problem("squared_error", np.float64)
    settings = dict(SETTINGS, backend=backend)
    model = Regressor(**settings)
    for _ in range(2):
        model.partial_fit(X, y)

    def run_epoch(call, real, X, y, order, P, state, *rest):
        half_an_epoch(P, state)
        raise KeyboardInterrupt

    wrap_run_epoch(monkeypatch, backend, run_epoch)
    interrupted(lambda: model.partial_fit(X, y))
    monkeypatch.undo()
    assert_same_model(model, Regressor(**dict(settings, epochs=2)).fit(X, y))


def test_early_stopping_interrupted_keeps_the_best_epoch_as_at_a_normal_end(backend):
    Regressor, _ = estimators()
    X, y = make_problem("squared_error", np.float64, n=200)
    settings = dict(SETTINGS, backend=backend, early_stopping=True, n_iter_no_change=50)

    def callback(epoch, *_):
        if epoch == 6:
            raise KeyboardInterrupt

    model = Regressor(**settings, callback=callback)
    interrupted(lambda: model.fit(X, y))
    assert_same_model(model, Regressor(**dict(settings, epochs=6)).fit(X, y))


# --- a real Ctrl-C: SIGINT to a process running a long fit --------------------------

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import fastgd

    backend = sys.argv[1]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000 if backend == "numpy" else 200_000, 8))
    y = X @ np.arange(1.0, 9.0) + 0.1 * rng.standard_normal(len(X))
    settings = dict(lr=1e-3, batch_size=16, random_state=0, backend=backend)

    def callback(epoch, loss, coef, intercept):
        if epoch == 1:
            print("started", flush=True)

    try:
        fastgd.fit(X, y, epochs=100_000, callback=callback, **settings)
        print("not interrupted", flush=True)
    except KeyboardInterrupt as exc:
        result = exc.result
        again = fastgd.fit(X, y, epochs=result.n_epochs, **settings)
        same = np.array_equal(result.coef, again.coef) and result.intercept == again.intercept
        print("interrupted", result.n_epochs, len(result.loss_history),
              bool(np.isfinite(result.coef).all()), same, flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX")
def test_sigint_stops_a_long_fit_and_keeps_its_completed_epochs(backend):
    root = str(Path(fastgd.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        root, os.environ.get("PYTHONPATH")]))}  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, backend], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "started", child.stderr.read()
        time.sleep(0.05)  # somewhere inside a later epoch
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    words = out.split()
    assert words[0] == "interrupted", out + err
    n_epochs, n_losses = int(words[1]), int(words[2])
    assert n_epochs >= 1 and n_losses == n_epochs
    assert words[3:] == ["True", "True"]  # finite, and exactly the fit of n_epochs epochs
    assert "training stops at the end of this epoch" in err
