"""Divergence is caught at the batch where it happens, and no NaN is returned."""

import pickle

import numpy as np
import pytest

import fastgd
import fastgd.backends
from fastgd._config import N_STATE_SLOTS
from fastgd._engine import GROWTH_BOUND
from support import ALL_BACKENDS, REFERENCE_BACKEND

DIVERGING = dict(lr=10.0, epochs=20, batch_size=32, random_state=0)


def exploding_problem(dtype=np.float64):
    rng = np.random.default_rng(0)
    X = (100.0 * rng.standard_normal((1000, 3))).astype(dtype)
    return X, X @ np.array([1.0, -2.0, 0.5]) + 3.0


def test_divergence_raises_a_floating_point_error_naming_epoch_batch_and_lr(backend):
    X, y = exploding_problem()
    with pytest.raises(fastgd.DivergenceError, match=r"epoch 1, batch \d+.*lr=10.*smaller lr"):
        with np.errstate(all="ignore"):
            fastgd.fit(X, y, backend=backend, **DIVERGING)
    assert issubclass(fastgd.DivergenceError, FloatingPointError)


def test_divergence_keeps_the_last_finite_epoch(backend):
    X, y = exploding_problem()
    # Just past the stable step size: the error grows slowly, so some epochs
    # complete before the loss overflows.
    with pytest.raises(fastgd.DivergenceError) as caught:
        with np.errstate(all="ignore"):
            fastgd.fit(X / 100.0, y, backend=backend, lr=2.5, epochs=500, random_state=0)
    err = caught.value
    assert err.epoch >= 2
    assert err.result.n_epochs == err.epoch - 1
    assert len(err.result.loss_history) == err.epoch - 1
    assert np.isfinite(err.result.loss_history).all()
    assert np.isfinite(err.result.coef).all() and np.isfinite(err.result.intercept)


def test_every_backend_stops_at_the_same_batch(dtype):
    X, y = exploding_problem(dtype)
    batches = set()
    for name in fastgd.available_backends():
        with pytest.raises(fastgd.DivergenceError) as caught:
            with np.errstate(all="ignore"):
                fastgd.fit(X, y, backend=name, **DIVERGING)
        batches.add((caught.value.epoch, caught.value.batch))
    assert len(batches) == 1


def test_the_error_is_raised_from_the_diverging_epoch_and_result_is_rolled_back(
    monkeypatch, backend
):
    # A kernel that has already changed the parameters when a batch's loss
    # turns non-finite: the result must not show any of that epoch.
    from support import wrap_run_epoch

    X, y = exploding_problem()
    X /= 100.0

    def run_epoch(call, real, X, y, order, P, state, cfg, lr, t0):
        if call == 3:
            P += np.nan
            return np.nan, 5
        return real(X, y, order, P, state, cfg, lr, t0)

    wrap_run_epoch(monkeypatch, backend, run_epoch)
    # The kernel's n_updates counts the diverging batch's update.
    with pytest.raises(fastgd.DivergenceError, match=r"epoch 3, batch 5") as caught:
        fastgd.fit(X, y, backend=backend, lr=0.01, epochs=5, random_state=0)
    monkeypatch.undo()
    expected = fastgd.fit(X, y, backend=backend, lr=0.01, epochs=2, random_state=0)
    np.testing.assert_array_equal(caught.value.result.coef, expected.coef)
    assert caught.value.result.loss_history == expected.loss_history
    assert caught.value.result.n_updates == expected.n_updates


# --- the estimators keep the last finite epoch too ----------------------------------


def fitted_models():
    pytest.importorskip("sklearn")
    return fastgd.MiniBatchRegressor, fastgd.MiniBatchClassifier


def assert_same_model(model, expected):
    np.testing.assert_array_equal(model.coef_, expected.coef_, strict=True)
    np.testing.assert_array_equal(model.intercept_, expected.intercept_, strict=True)
    assert (model.n_iter_, model.t_) == (expected.n_iter_, expected.t_)
    assert model.loss_curve_ == expected.loss_curve_
    for trainer, other in zip(model._trainers, expected._trainers, strict=True):
        np.testing.assert_array_equal(trainer.P, other.P, strict=True)
        np.testing.assert_array_equal(trainer.state, other.state, strict=True)


def test_estimator_fit_keeps_the_last_finite_epoch(backend):
    Regressor, _ = fitted_models()
    X, y = exploding_problem()
    settings = dict(lr=2.5, batch_size=32, random_state=0, backend=backend)
    model = Regressor(epochs=500, **settings)
    with pytest.raises(fastgd.DivergenceError) as caught:
        with np.errstate(all="ignore"):
            model.fit(X / 100.0, y)
    err = caught.value
    assert err.epoch >= 2 and model.n_iter_ == err.epoch - 1
    assert np.isfinite(model.coef_).all() and np.isfinite(model.intercept_).all()
    assert np.isfinite(model.loss_curve_).all() and len(model.loss_curve_) == model.n_iter_
    np.testing.assert_array_equal(model.coef_, err.result.coef)
    assert_same_model(model, Regressor(epochs=model.n_iter_, **settings).fit(X / 100.0, y))
    assert np.isfinite(model.predict(X / 100.0)).all()


def test_estimator_partial_fit_keeps_the_last_finite_call(backend):
    Regressor, _ = fitted_models()
    X, y = exploding_problem()
    model = Regressor(lr=10.0, random_state=0, backend=backend)
    calls = 0
    with pytest.raises(fastgd.DivergenceError):
        with np.errstate(all="ignore"):
            for calls in range(1, 100):
                model.partial_fit(X, y)
    assert model.n_iter_ == calls - 1
    assert np.isfinite(model.coef_).all() and np.isfinite(model.intercept_).all()


def test_one_vs_rest_rolls_all_its_outputs_back_when_one_diverges(monkeypatch, backend):
    from support import make_problem, wrap_run_epoch

    _, Classifier = fitted_models()
    X, y = make_problem("multinomial", np.float64)
    settings = dict(loss="hinge", lr=0.05, batch_size=8, random_state=0, backend=backend)

    def run_epoch(call, real, X, y, order, P, state, cfg, lr, t0):
        if call == 3:  # epoch 3, which trains the three outputs in one pass
            P[1] += np.inf  # the second class's output alone
            return np.inf, 2  # the diverging update counted
        return real(X, y, order, P, state, cfg, lr, t0)

    wrap_run_epoch(monkeypatch, backend, run_epoch)
    model = Classifier(epochs=10, **settings)
    with pytest.raises(fastgd.DivergenceError, match="epoch 3, batch 2"):
        model.fit(X, y)
    monkeypatch.undo()
    assert [trainer.result.n_epochs for trainer in model._trainers] == [2]
    assert_same_model(model, Classifier(epochs=2, **settings).fit(X, y))


# --- what the arithmetic hides: every backend sees the same divergence -----------
# The reference defines it (``_reference.run_epoch``): a batch whose loss is
# not finite, or whose update leaves a parameter or an optimizer moment that is
# not. Adam's second moment overflowing to inf makes every step 0 with the
# parameters finite; a soft-threshold could turn a NaN weight into 0; Numba's
# own math.isfinite of a sum is folded to True under fast-math. Each hid a
# divergence on one backend and not on the others.

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]
# Scales at which the first batches overflow a moment or a parameter of the
# dtype: squared gradients of float64 data scaled by 1e160 pass 1e308, and
# float32 moments overflow past 3.4e38.
HUGE = {np.dtype(np.float64): 1e160, np.dtype(np.float32): 1e15}


def huge_problem(dtype, layout, n=64, scale=None, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, (n, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    X = (X * (HUGE[np.dtype(dtype)] if scale is None else scale)).astype(dtype)
    if layout == "csr":
        scipy_sparse = pytest.importorskip("scipy.sparse")
        X = scipy_sparse.csr_array(X)
    return X, y.astype(dtype)


def divergence_on_every_backend(X, y, **settings):
    """``{backend: (epoch, batch)}`` of the DivergenceError each backend raises, or "finished"."""
    outcomes = {}
    for name in fastgd.available_backends():
        try:
            with np.errstate(all="ignore"):
                fastgd.fit(X, y, backend=name, epochs=3, random_state=0, **settings)
        except fastgd.DivergenceError as err:
            outcomes[name] = (err.epoch, err.batch)
        else:
            outcomes[name] = "finished"
    return outcomes


@pytest.mark.parametrize("penalty", ["l2", "l1"])
@pytest.mark.parametrize("batch_size", [1, 8])
@pytest.mark.parametrize("layout", ["dense", "csr"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_an_overflowing_moment_or_parameter_is_divergence_on_every_backend(
    optimizer, layout, batch_size, penalty, dtype
):
    X, y = huge_problem(dtype, layout)
    outcomes = divergence_on_every_backend(
        X, y, optimizer=optimizer, batch_size=batch_size, penalty=penalty, alpha=1e-4, lr=0.01
    )
    reference = outcomes[REFERENCE_BACKEND]
    assert reference != "finished", outcomes
    assert set(outcomes.values()) == {reference}, outcomes


@pytest.mark.parametrize("optimizer", ["adagrad", "rmsprop", "adam", "adamw"])
def test_a_second_moment_at_infinity_is_seen_although_the_step_is_zero(backend, optimizer):
    # v = inf makes m / (sqrt(v) + eps) exactly 0: the parameters stay
    # finite (and unchanged), only the moment shows what happened.
    from support import kernel_config

    kernels = fastgd.backends.get_backend(backend)
    cfg = kernel_config("squared_error", optimizer=OPTIMIZERS.index(optimizer), batch_size=4)
    P = np.zeros((1, 4))
    state = np.zeros((N_STATE_SLOTS, 1, 4))
    G = np.array([[1e200, -1e200, 1e200, 0.5]])
    with np.errstate(all="ignore"):
        finite = kernels.apply_update(P, G, state, cfg, 0.01, 1)
    assert not np.isfinite(state).all()
    assert finite is False


def test_a_nan_weight_stays_nan_through_the_l1_threshold(backend):
    from support import kernel_config

    kernels = fastgd.backends.get_backend(backend)
    for optimizer in (0, OPTIMIZERS.index("adam")):  # sgd_step's threshold and update_output's
        cfg = kernel_config("squared_error", optimizer=optimizer, batch_size=4, l1=0.1)
        P = np.array([[np.nan, 0.01, -0.01, 0.0]])
        state = np.zeros((N_STATE_SLOTS, 1, 4))
        with np.errstate(all="ignore"):
            finite = kernels.apply_update(P, np.zeros((1, 4)), state, cfg, 1.0, 1)
        assert np.isnan(P[0, 0]) and finite is False, (optimizer, P)
        assert P[0, 1] == 0.0 and P[0, 2] == 0.0  # inside the threshold: exactly 0


def test_a_finite_update_reports_finite(backend):
    from support import kernel_config

    kernels = fastgd.backends.get_backend(backend)
    cfg = kernel_config("squared_error", optimizer=OPTIMIZERS.index("adam"), batch_size=4, l1=0.1)
    P, state = np.ones((1, 4)), np.zeros((N_STATE_SLOTS, 1, 4))
    assert kernels.apply_update(P, np.ones((1, 4)), state, cfg, 0.01, 1) is True


def test_a_loss_that_overflows_at_batch_size_one_stops_there_on_every_backend(dtype):
    # The fused batch-1 SGD step: its loss is a sum, whose finiteness Numba's
    # math.isfinite would have folded to True.
    X, y = huge_problem(dtype, "dense", scale=1e100 if dtype == np.float64 else 1e12)
    outcomes = divergence_on_every_backend(X, y, batch_size=1, lr=0.01)
    assert outcomes[REFERENCE_BACKEND] != "finished"
    assert set(outcomes.values()) == {outcomes[REFERENCE_BACKEND]}, outcomes


def test_the_compiled_finiteness_check_sees_a_sum_that_overflowed():
    numba_kernels = pytest.importorskip("fastgd.backends._numba")
    from numba import njit

    @njit(fastmath=numba_kernels.FASTMATH)
    def finite_sum(a, b):
        return numba_kernels.is_finite(a + b), numba_kernels.finite_probe(a + b)

    assert finite_sum(1.0, 2.0) == (True, 0.0)
    for a, b in [(np.inf, 0.0), (1e308, 1e308), (np.nan, 1.0), (-np.inf, 1.0)]:
        finite, probe = finite_sum(a, b)
        assert not finite and np.isnan(probe), (a, b)


# --- divergence that stays finite (issue 16 item 12) ---------------------------


def _full_batch_just_past_stability(factor):
    """A least-squares problem and a full-batch rate ``factor`` times its largest stable one's half."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6))
    y = X @ rng.normal(size=6)
    Xb = np.c_[X, np.ones(len(X))]
    curvature = np.linalg.eigvalsh(Xb.T @ Xb / len(X)).max()
    return X, y, factor / curvature


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_a_loss_growing_geometrically_is_divergence_before_it_overflows(backend):
    # lr a little past 2/curvature: every epoch multiplies the loss by about
    # 1.7, finite for hundreds of epochs, which were once returned silently.
    X, y, lr = _full_batch_just_past_stability(2.6)
    with pytest.raises(fastgd.DivergenceError, match="mean loss grew to") as info:
        fastgd.fit(X, y, lr=lr, batch_size=None, shuffle=False, epochs=500, backend=backend)
    err = info.value
    assert err.batch is None and "first epoch" in err.growth
    kept = err.result
    # The epoch that crossed the bound is not kept; the ones before it are.
    assert kept.n_epochs == err.epoch - 1 == len(kept.loss_history)
    assert kept.loss_history[-1] <= GROWTH_BOUND * kept.loss_history[0]
    assert np.all(np.isfinite(kept.coef))


def test_the_growth_bound_counts_from_a_resumed_states_first_epoch():
    X, y, lr = _full_batch_just_past_stability(2.6)
    first = fastgd.fit(X, y, lr=lr, batch_size=None, shuffle=False, epochs=1)
    state = pickle.loads(pickle.dumps(first.state))
    assert state.first_loss == first.loss_history[0]
    assert state.copy().first_scale == state.first_scale == np.abs(first.state.P).max()


def test_the_largest_parameter_growing_past_the_bound_is_divergence():
    from fastgd._engine import growth_past_bound
    from fastgd._state import TrainState

    state = TrainState.zeros(3, 1, np.float64)
    state.P[...] = 0.5
    assert growth_past_bound(state, 1.0) is None  # the first epoch: recorded
    assert (state.first_loss, state.first_scale) == (1.0, 0.5)
    state.P[0, 1] = -2e10  # bound: 1e10 · max(1, 0.5)
    assert "largest parameter grew to -2e+10" not in (growth_past_bound(state, 1.0) or "")
    assert "largest parameter grew to 2e+10" in growth_past_bound(state, 1.0)
    state.P[0, 1] = 9e9
    assert growth_past_bound(state, 0.5) is None


def test_a_first_epoch_of_zero_loss_is_no_measure_of_growth():
    from fastgd._engine import growth_past_bound
    from fastgd._state import TrainState

    state = TrainState.zeros(3, 1, np.float64)
    assert growth_past_bound(state, 0.0) is None  # the first epoch: recorded
    assert growth_past_bound(state, 0.5) is None  # the first positive loss: the measure
    assert state.first_loss == 0.5 and state.first_scale == 0.0
    assert "mean loss grew" in growth_past_bound(state, 1e11)
    state.P[0, 0] = 2e10  # the parameters are still measured against the first epoch's
    assert "largest parameter grew" in growth_past_bound(state, 0.5)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_a_perceptron_whose_first_epoch_loss_is_zero_trains_on(backend):
    # One batch at P = 0: every score is 0, the loss 0, the gradient not.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    result = fastgd.fit(X, y, loss="perceptron", lr=0.05, batch_size=None, shuffle=False,
                        epochs=5, backend=backend)  # fmt: skip
    assert result.loss_history[0] == 0.0 and result.n_epochs == 5


@pytest.mark.parametrize("lr", [0.01, 0.5, 1.9])
def test_no_false_alarm_below_the_stability_limit(lr):
    X, y, scaled = _full_batch_just_past_stability(lr)
    result = fastgd.fit(X, y, lr=scaled, batch_size=None, shuffle=False, epochs=300)
    assert result.n_epochs == 300
