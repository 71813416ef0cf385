"""The scikit-learn estimators: scikit-learn's own checks, then fastgd's promises.

``MiniBatchRegressor`` and ``MiniBatchClassifier`` must behave as scikit-learn
estimators (``check_estimator``, Pipeline, GridSearchCV, clone, pickle) and
give the engine's numbers: ``fit`` equals ``fastgd.fit`` and equals ``partial_fit``
called once per epoch, for the same ``random_state``.
"""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastgd
from fastgd import MiniBatchClassifier, MiniBatchRegressor

from support import SAMPLE_WEIGHT_CHECKS

# Every usable backend, the NumPy reference included.
BACKENDS = fastgd.available_backends()

# --- problems -------------------------------------------------------------------


def regression_problem(n=120, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ np.linspace(-2.0, 2.0, d) + 0.5 + 0.1 * rng.normal(size=n)
    return X, y


def classification_problem(n_classes, n=150, d=4, seed=0):
    X, y = make_blobs(n_samples=n, n_features=d, centers=n_classes, random_state=seed)
    return StandardScaler().fit_transform(X), y


def run_python(code):
    """Run ``code`` in a fresh interpreter that imports this checkout's fastgd."""
    root = str(Path(fastgd.__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env)  # fmt: skip


# --- scikit-learn's estimator checks ----------------------------------------------
# Every check passes with the defaults (the defaults of fastgd.fit: 10 epochs
# of batch 32 at lr=0.01), and with hinge / one-vs-rest for the classifier,
# except three of the regressor's, which fit y ~ N(0, 1) on features around
# 100 (not standardised): plain SGD at lr=0.01 diverges there (the loss grows
# 1e14-fold in an epoch), which fastgd reports as a DivergenceError instead
# of returning a finite but meaningless model. The README says so.
DIVERGING_CHECKS = {
    name: "features around 100 make SGD at the default lr diverge: DivergenceError"
    for name in ("check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in")
}


# check_class_weight_classifiers weighs class 0 by 1000 on features of
# scale 20: the weight multiplies the steps, and at the default constant
# lr=0.01 plain SGD overshoots (the loss oscillates, the tol rule stops it
# after the check's n_iter_no_change=20 epochs, the multinomial model ends
# far from its optimum). At a rate for such steps it passes (test below).
CLASS_WEIGHT_CHECKS = {
    "check_class_weight_classifiers": "class weights of 1000 multiply the steps: plain SGD "
    "at the default lr=0.01 overshoots on features of scale 20",
}


def expected_failures(estimator):
    if isinstance(estimator, MiniBatchRegressor):
        return {**DIVERGING_CHECKS, **SAMPLE_WEIGHT_CHECKS}
    return {**SAMPLE_WEIGHT_CHECKS, **CLASS_WEIGHT_CHECKS}


@parametrize_with_checks(
    [MiniBatchRegressor(), MiniBatchClassifier(), MiniBatchClassifier(loss="hinge"),
     MiniBatchClassifier(loss="modified_huber")],
    expected_failed_checks=expected_failures,
)
def test_estimators_pass_scikit_learn_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("name", sorted(DIVERGING_CHECKS))
def test_the_checks_expected_to_fail_fail_by_divergence_only(name):
    import sklearn.utils.estimator_checks as checks

    with pytest.raises(fastgd.DivergenceError, match="grew to"):
        getattr(checks, name)("MiniBatchRegressor", MiniBatchRegressor())
    # At a rate the data allow, the same check passes.
    getattr(checks, name)("MiniBatchRegressor", MiniBatchRegressor(lr=1e-6))


@pytest.mark.parametrize("loss", ["log_loss", "hinge", "modified_huber"])
def test_the_class_weight_check_passes_at_a_rate_for_its_weights(loss):
    import sklearn.utils.estimator_checks as checks

    checks.check_class_weight_classifiers(
        "MiniBatchClassifier", MiniBatchClassifier(loss=loss, lr=1e-4, tol=None, epochs=100)
    )


# --- scikit-learn's tools -----------------------------------------------------------


def test_pipeline_with_scaler_classifies_breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    model = make_pipeline(
        StandardScaler(),
        MiniBatchClassifier(optimizer="adam", epochs=20, penalty="l2", alpha=1e-3,
                            random_state=0),  # fmt: skip
    )
    model.fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.95


def test_grid_search_over_alpha_refits_the_best():
    X, y = regression_problem(n=200)
    search = GridSearchCV(
        MiniBatchRegressor(penalty="l2", lr=0.05, epochs=20, random_state=0),
        {"alpha": [1e-4, 1e-2, 10.0]},
        cv=3,
    )
    search.fit(X, y)
    # A strong penalty shrinks the weights far from the truth.
    assert search.best_params_["alpha"] < 10.0
    assert search.best_estimator_.score(X, y) > 0.95


def test_clone_copies_parameters_not_the_fit():
    X, y = regression_problem()
    model = MiniBatchRegressor(lr=0.05, optimizer="adam", random_state=3).fit(X, y)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "coef_")
    np.testing.assert_array_equal(copy.fit(X, y).coef_, model.coef_)


@pytest.mark.parametrize(
    "model",
    [MiniBatchRegressor(optimizer="adam"), MiniBatchClassifier(),
     MiniBatchClassifier(loss="hinge")],  # fmt: skip
    ids=["regressor", "classifier", "hinge"],
)
def test_pickle_round_trip_predicts_identically(model):
    X, y = classification_problem(3)
    model = clone(model).set_params(random_state=0).fit(X, y)
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.coef_, model.coef_)
    # The loaded model keeps its optimizer state and counters and trains on.
    loaded.partial_fit(X, y)
    assert loaded.n_iter_ == model.n_iter_ + 1


def test_pickle_leaves_out_the_row_order():
    X, y = regression_problem(n=5000)
    model = MiniBatchRegressor(random_state=0).fit(X, y)
    assert len(pickle.dumps(model)) < 4 * X.shape[0]


# --- labels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [np.array(["cat", "dog"]), np.array([-7, 40]), np.array(["b", "c", "a"]),
     np.array([10, 3, 250])],  # fmt: skip
    ids=["two-strings", "two-integers", "three-strings", "three-integers"],
)
@pytest.mark.parametrize("loss", ["log_loss", "hinge"])
def test_labels_of_any_kind_map_to_codes_and_back(labels, loss):
    X, codes = classification_problem(len(labels))
    y = labels[codes]
    model = MiniBatchClassifier(loss=loss, lr=0.1, random_state=0).fit(X, y)
    np.testing.assert_array_equal(model.classes_, np.sort(labels))
    predicted = model.predict(X)
    assert predicted.dtype == y.dtype
    assert set(predicted) <= set(labels)
    assert np.mean(predicted == y) > 0.9


def test_partial_fit_needs_classes_first_then_accepts_chunks_without_them():
    X, y = classification_problem(3)
    model = MiniBatchClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        model.partial_fit(X, y)
    model.partial_fit(X[y == 0], y[y == 0], classes=[0, 1, 2])
    model.partial_fit(X[y == 2], y[y == 2])
    assert model.coef_.shape == (3, 4)
    with pytest.raises(ValueError, match="labels not in classes_"):
        model.partial_fit(X[:5], np.full(5, 9))


def test_one_class_is_an_error_that_says_class():
    X, _ = regression_problem(n=10)
    with pytest.raises(ValueError, match="at least 2 classes; got 1 class"):
        MiniBatchClassifier().fit(X, np.zeros(10))


# --- shapes -------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize(
    "loss", ["log_loss", "hinge", "modified_huber", "squared_hinge", "perceptron"]
)
def test_classifier_shapes_follow_sgd_classifier(n_classes, loss):
    X, y = classification_problem(n_classes)
    model = MiniBatchClassifier(loss=loss, random_state=0).fit(X, y)
    rows = 1 if n_classes == 2 else n_classes
    assert model.coef_.shape == (rows, 4)
    assert model.intercept_.shape == (rows,)
    scores = model.decision_function(X)
    assert scores.shape == ((150,) if n_classes == 2 else (150, n_classes))
    probabilistic = loss in ("log_loss", "modified_huber")
    assert hasattr(model, "predict_proba") == probabilistic
    assert hasattr(model, "predict_log_proba") == probabilistic
    if probabilistic:
        proba = model.predict_proba(X)
        assert proba.shape == (150, n_classes)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(model.predict_log_proba(X), np.log(proba))
    if loss == "log_loss":
        # (modified_huber's clipped scores may tie.)
        np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)],
                                      model.predict(X))  # fmt: skip


def test_hinge_has_no_predict_proba():
    model = MiniBatchClassifier(loss="hinge")
    assert not hasattr(model, "predict_proba")
    with pytest.raises(AttributeError):
        model.predict_proba


def test_regressor_shapes_follow_sgd_regressor():
    X, y = regression_problem()
    model = MiniBatchRegressor(epochs=10, tol=None, random_state=0).fit(X, y)
    assert model.coef_.shape == (4,)
    assert model.intercept_.shape == (1,)
    assert model.predict(X).shape == (120,)
    assert model.n_features_in_ == 4
    assert model.n_iter_ == 10 and len(model.loss_curve_) == 10
    assert model.t_ == 10 * int(np.ceil(120 / 32))


def test_float32_data_trains_in_float32():
    X, y = regression_problem()
    model = MiniBatchRegressor(random_state=0).fit(X.astype(np.float32), y)
    assert model.coef_.dtype == np.float32
    assert model.predict(X).dtype == np.float32


# --- the engine's numbers -----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_gives_the_numbers_of_fastgd_fit(backend):
    X, y = regression_problem()
    settings = dict(optimizer="adam", lr=0.05, batch_size=16, epochs=7, penalty="l2",
                    random_state=5, backend=backend)  # fmt: skip
    model = MiniBatchRegressor(**settings).fit(X, y)
    result = fastgd.fit(X, y, **settings)
    np.testing.assert_array_equal(model.coef_, result.coef)
    np.testing.assert_array_equal(model.intercept_, [result.intercept])
    assert model.loss_curve_ == result.loss_history
    assert (model.n_iter_, model.t_) == (result.n_epochs, result.n_updates)


def partial_fit_cases():
    yield "regressor", MiniBatchRegressor(), regression_problem()
    yield "binary", MiniBatchClassifier(), classification_problem(2)
    yield "multinomial", MiniBatchClassifier(), classification_problem(3)
    yield "one-vs-rest", MiniBatchClassifier(loss="hinge"), classification_problem(3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize(
    "model, problem",
    [case[1:] for case in partial_fit_cases()],
    ids=[case[0] for case in partial_fit_cases()],
)
def test_partial_fit_epoch_by_epoch_equals_fit(model, problem, optimizer, backend):
    X, y = problem
    settings = dict(optimizer=optimizer, batch_size=20, random_state=11, backend=backend,
                    schedule="exponential", penalty="elasticnet")  # fmt: skip
    fitted = clone(model).set_params(epochs=6, **settings).fit(X, y)
    stepped = clone(model).set_params(**settings)
    first = {"classes": np.unique(y)} if isinstance(model, MiniBatchClassifier) else {}
    for _ in range(6):
        stepped.partial_fit(X, y, **first)
    np.testing.assert_array_equal(stepped.coef_, fitted.coef_)
    np.testing.assert_array_equal(stepped.intercept_, fitted.intercept_)
    assert stepped.loss_curve_ == fitted.loss_curve_
    assert (stepped.n_iter_, stepped.t_) == (fitted.n_iter_, fitted.t_)


def test_partial_fit_batch_none_is_each_chunks_full_batch():
    X, y = regression_problem()
    model = MiniBatchRegressor(batch_size=None, random_state=0)
    model.partial_fit(X[:10], y[:10])
    model.partial_fit(X[10:], y[10:])
    assert model.t_ == 2
    # A batch larger than the first chunk still applies to the next, larger one.
    model = MiniBatchRegressor(batch_size=50, random_state=0)
    model.partial_fit(X[:10], y[:10]).partial_fit(X, y)
    assert model.t_ == 1 + 3


def test_warm_start_continues_where_the_last_fit_stopped():
    X, y = regression_problem()
    settings = dict(optimizer="adam", random_state=2)
    warm = MiniBatchRegressor(warm_start=True, epochs=3, **settings).fit(X, y)
    warm.set_params(epochs=4).fit(X, y)
    straight = MiniBatchRegressor(epochs=7, **settings).fit(X, y)
    np.testing.assert_array_equal(warm.coef_, straight.coef_)
    assert warm.n_iter_ == 7 and warm.loss_curve_ == straight.loss_curve_
    # Without warm_start, a second fit starts again from zero.
    cold = MiniBatchRegressor(epochs=3, **settings).fit(X, y)
    again = clone(cold).fit(X, y)
    np.testing.assert_array_equal(cold.fit(X, y).coef_, again.coef_)
    assert cold.n_iter_ == 3


def test_warm_start_cannot_change_the_loss():
    X, y = regression_problem()
    model = MiniBatchRegressor(warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="cannot continue"):
        model.set_params(loss="huber").fit(X, y)


# --- stopping -----------------------------------------------------------------------


@pytest.mark.parametrize("model", [MiniBatchRegressor(), MiniBatchClassifier()],
                         ids=["regressor", "classifier"])  # fmt: skip
def test_early_stopping_stops_early_on_an_easy_problem(model):
    X, y = regression_problem(n=400) if isinstance(model, MiniBatchRegressor) else (
        classification_problem(2, n=400))
    model = clone(model).set_params(
        early_stopping=True, epochs=500, n_iter_no_change=3, tol=1e-3, lr=0.05,
        random_state=0,
    )  # fmt: skip
    model.fit(X, y)
    assert model.n_iter_ < 100
    assert model.score(X, y) > 0.95


def test_early_stopping_keeps_the_best_epoch():
    X, y = regression_problem(n=300)
    scores = []

    def record(epoch, loss, coef, intercept):
        scores.append((coef, intercept))

    model = MiniBatchRegressor(early_stopping=True, epochs=60, n_iter_no_change=4,
                               lr=0.2, random_state=0, callback=record)  # fmt: skip
    model.fit(X, y)
    # The kept parameters are those of some epoch, not necessarily the last.
    assert any(np.array_equal(coef, model.coef_) for coef, _ in scores)


def test_early_stopping_needs_rows_on_both_sides():
    X, y = regression_problem(n=5)
    with pytest.raises(ValueError, match="at least 1 validation row"):
        MiniBatchRegressor(early_stopping=True, validation_fraction=0.99).fit(X, y)


@pytest.mark.parametrize("estimator", [MiniBatchRegressor, MiniBatchClassifier])
def test_both_hold_outs_follow_one_rule(estimator):
    # 8 rows at 0.99: ceil(7.92) = 8 held out, none left to train on. The
    # stratified split once held out 6 and trained on 2 without a word.
    X = np.random.default_rng(0).normal(size=(8, 2))
    y = np.array([0, 1] * 4)
    with pytest.raises(ValueError, match="gives 8 validation row"):
        estimator(early_stopping=True, validation_fraction=0.99).fit(X, y)


def test_stratified_hold_out_never_holds_out_fewer_rows_than_asked():
    X = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(ValueError, match=r"all 1 row\(s\) of class classes_\[1\]"):
        MiniBatchClassifier(early_stopping=True, validation_fraction=0.6).fit(
            X, np.array([0, 0, 0, 0, 1])
        )
    # Where every class keeps a training row, exactly ceil(fraction · n) are held out.
    from fastgd._estimators import _hold_out

    codes = np.array([0] * 7 + [1] * 3)
    training, validation = _hold_out(10, 0.35, np.random.default_rng(0), strata=codes)
    assert validation.size == 4 and training.size == 6
    assert set(codes[training]) == {0, 1}


def test_messages_show_plain_numbers_not_numpy_reprs():
    X = np.random.default_rng(0).normal(size=(8, 2))
    with pytest.raises(ValueError, match="got values from -1 to 1") as info:
        fastgd.fit(X, np.array([-1, 1] * 4), loss="log_loss")
    assert "np." not in str(info.value)
    with pytest.raises(ValueError, match="got -1[.]$"):
        fastgd.fit(X, np.ones(8), epochs=np.int64(-1))


def test_tol_without_early_stopping_watches_the_training_loss():
    X, y = regression_problem()
    settings = dict(lr=0.1, epochs=200, tol=1e-3, random_state=0)
    model = MiniBatchRegressor(**settings).fit(X, y)
    assert model.n_iter_ == fastgd.fit(X, y, **settings).n_epochs < 200


# --- progress and callbacks -----------------------------------------------------------


def test_verbose_shows_a_progress_bar_on_stderr(capsys):
    X, y = regression_problem()
    MiniBatchRegressor(verbose=1, epochs=3, random_state=0).fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "MiniBatchRegressor" in captured.err
    assert "3/3" in captured.err
    assert "loss=" in captured.err and "rows/s" in captured.err


def test_verbose_without_tqdm_prints_a_line_per_epoch(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    X, y = regression_problem()
    MiniBatchRegressor(verbose=True, epochs=3, tol=None, random_state=0).fit(X, y)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines[:3]] == [
        f"MiniBatchRegressor: epoch {i}/3" for i in (1, 2, 3)
    ]
    assert all("rows/s" in line for line in lines[:3])
    assert lines[3:] == ["MiniBatchRegressor: ran every epoch (tol=None: no stopping rule)"]


def test_verbose_shows_the_watched_score_and_why_training_stopped(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    X, y = regression_problem(n=400)
    model = MiniBatchRegressor(verbose=1, early_stopping=True, lr=0.05, random_state=0,
                               n_iter_no_change=3).fit(X, y)  # fmt: skip
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == model.n_iter_ + 1 == len(model.validation_scores_) + 1
    assert f"validation score={model.validation_scores_[0]:.5g}" in lines[0]
    assert lines[-1] == ("MiniBatchRegressor: stopped: the validation score did not improve "
                         "by tol=0.001 for 3 epochs in a row")  # fmt: skip
    assert model.best_validation_score_ == max(model.validation_scores_)
    assert MiniBatchRegressor().fit(X, y).validation_scores_ is None


def test_sklearn_defaults_stop_when_the_loss_stops_improving_and_warn_otherwise():
    from sklearn.datasets import load_diabetes
    from sklearn.exceptions import ConvergenceWarning

    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = MiniBatchRegressor(random_state=0).fit(X, y)
    assert model.n_iter_ < 1000
    # scikit-learn's SGDRegressor() scores 0.51 on the training data.
    assert model.score(X, y) > 0.5
    with pytest.warns(ConvergenceWarning, match="ran all epochs=2"):
        MiniBatchRegressor(epochs=2, random_state=0).fit(X, y)


def test_quiet_fit_prints_nothing_and_imports_no_tqdm():
    code = (
        "import sys, numpy as np, fastgd\n"
        "assert 'sklearn' not in sys.modules, 'import fastgd imported sklearn'\n"
        "X = np.random.default_rng(0).normal(size=(50, 2))\n"
        "fastgd.MiniBatchRegressor(epochs=2, tol=None).fit(X, X[:, 0])\n"
        "assert 'tqdm' not in sys.modules, 'verbose=0 imported tqdm'\n"
    )
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and run.stderr == ""


def test_without_scikit_learn_the_estimators_say_how_to_install_it():
    code = (
        "import sys\n"
        "sys.modules['sklearn'] = None\n"
        "import fastgd\n"
        "fastgd.fit([[0.0], [1.0]], [0.0, 1.0], epochs=1)\n"
        "fastgd.MiniBatchRegressor\n"
    )
    run = run_python(code)
    assert run.returncode != 0
    assert "MiniBatchRegressor needs scikit-learn" in run.stderr
    assert "fastgd[sklearn]" in run.stderr


@pytest.mark.parametrize("model", [MiniBatchRegressor(), MiniBatchClassifier()],
                         ids=["regressor", "classifier"])  # fmt: skip
def test_callback_sees_every_epoch_with_copies_of_the_parameters(model):
    X, y = regression_problem() if isinstance(model, MiniBatchRegressor) else (
        classification_problem(2))
    seen = []

    def callback(epoch, loss, coef, intercept):
        seen.append((epoch, loss, coef.copy(), intercept.copy()))
        coef[...] = 1e9  # a copy: the model must not see this

    model = clone(model).set_params(epochs=4, random_state=0, callback=callback).fit(X, y)
    assert [epoch for epoch, *_ in seen] == [1, 2, 3, 4]
    assert [loss for _, loss, *_ in seen] == model.loss_curve_
    np.testing.assert_array_equal(seen[-1][2], model.coef_)
    np.testing.assert_array_equal(seen[-1][3], model.intercept_)
    # partial_fit calls it too, numbering on from the epochs already run.
    model.partial_fit(X, y)
    assert seen[-1][0] == 5


def test_callback_returning_true_stops_fit():
    X, y = regression_problem()
    model = MiniBatchRegressor(epochs=10, callback=lambda epoch, *_: epoch == 3).fit(X, y)
    assert model.n_iter_ == 3


@pytest.mark.parametrize("make", [MiniBatchRegressor, MiniBatchClassifier],
                         ids=["regressor", "classifier"])  # fmt: skip
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_callback_returning_an_array_names_it_and_keeps_the_epochs(make, method):
    X, y = classification_problem(2) if make is MiniBatchClassifier else regression_problem()
    classifier_chunk = make is MiniBatchClassifier and method == "partial_fit"
    extra = {"classes": np.unique(y)} if classifier_chunk else {}

    def array_callback(epoch, loss, coef, intercept):
        return coef if epoch == 2 else None

    model = make(epochs=5, random_state=0, callback=array_callback)
    reference = make(epochs=2, random_state=0)
    if method == "partial_fit":
        model.set_params(callback=None)
        model.partial_fit(X, y, **extra)
        model.set_params(callback=array_callback)
        reference.partial_fit(X, y, **extra).partial_fit(X, y)
    else:
        reference.fit(X, y)
    with pytest.raises(TypeError, match=r"array_callback.*ndarray.*epoch 2"):
        getattr(model, method)(X, y)
    assert model.n_iter_ == 2
    np.testing.assert_array_equal(model.coef_, reference.coef_)
    np.testing.assert_array_equal(model.intercept_, reference.intercept_)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize("model", [MiniBatchRegressor(), MiniBatchClassifier()],
                         ids=["regressor", "classifier"])  # fmt: skip
def test_predict_before_fit_raises_not_fitted(model):
    with pytest.raises(NotFittedError):
        model.predict(np.zeros((2, 3)))


def test_wrong_number_of_features_at_predict_uses_scikit_learn_wording():
    X, y = regression_problem()
    model = MiniBatchRegressor().fit(X, y)
    with pytest.raises(ValueError, match=(
        "X has 3 features, but MiniBatchRegressor is expecting 4 features as input.")):
        model.predict(X[:, :3])


@pytest.mark.parametrize(
    "setting, match",
    [({"loss": "log_loss"}, "loss='log_loss' is not supported"),
     ({"optimizer": "adma"}, "Did you mean 'adam'"),
     ({"verbose": -1}, "verbose must be an integer >= 0"),
     ({"validation_fraction": 1.0}, "validation_fraction must be"),
     ({"callback": 3}, "callback must be callable"),
     ({"backend": "fortran"}, "backend='fortran' is not supported")],  # fmt: skip
)
def test_bad_settings_raise_fastgds_messages_at_fit(setting, match):
    X, y = regression_problem()
    model = MiniBatchRegressor(**setting)  # __init__ only stores
    with pytest.raises((ValueError, TypeError), match=match):
        model.fit(X, y)


def test_nan_in_X_is_reported_by_fastgd():
    X, y = regression_problem()
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        MiniBatchRegressor().fit(X, y)


# --- DataFrames ---------------------------------------------------------------------


def test_dataframe_column_names_become_feature_names_in():
    pd = pytest.importorskip("pandas")
    X, y = regression_problem()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = MiniBatchRegressor(random_state=0).fit(frame, y)
    np.testing.assert_array_equal(model.feature_names_in_, ["a", "b", "c", "d"])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(model.predict(frame), model.predict(X))
    with pytest.raises(ValueError, match="feature names"):
        model.predict(frame[["b", "a", "c", "d"]])
    assert not hasattr(MiniBatchRegressor().fit(X, y), "feature_names_in_")


# --- a rejected call changes nothing -------------------------------------------------
# Every check runs before any attribute is set: a fit, warm_start fit or
# partial_fit refused for its data or its settings leaves the estimator as it
# was (scikit-learn's validate_data sets n_features_in_ as it checks).


def _bad_calls(make, mode):
    """(name, X, y, settings) of calls that must be refused: X of another width, mostly."""
    X, y = classification_problem(3, d=6, seed=1) if make is MiniBatchClassifier \
        else regression_problem(d=6, seed=1)  # fmt: skip
    nan_X = X.copy()
    nan_X[3, 2] = np.nan
    calls = [
        ("nan-X-other-width", nan_X, y, {}),
        ("inf-X-other-width", np.where(nan_X != nan_X, np.inf, nan_X), y, {}),
        ("y-of-other-length", X, y[:-1], {}),
        ("bad-lr", X, y, {"lr": -1.0}),
        ("bad-loss", X, y, {"loss": "no-such-loss"}),
        ("hogwild-on-numpy", X, y, {"parallel": "hogwild", "backend": "numpy"}),
        ("early-stopping-split", X[:1], y[:1], {"early_stopping": True}),
        ("complex-X", X.astype(complex), y, {}),
    ]
    if make is MiniBatchClassifier:
        calls += [
            ("one-class-y", X, np.zeros(len(y)), {}),
            ("continuous-y", X, np.linspace(0.0, 1.0, len(y)), {}),
        ]
        if mode != "fit":  # a fresh fit takes any labels
            calls += [("unseen-label", X, np.where(y == 0, 7, y), {})]
    else:
        calls += [("nan-y", X, np.where(np.arange(len(y)) == 5, np.nan, y), {})]
    return calls


def _fitted_state(model):
    """Deep copies of the public fitted attributes and of what the trainers hold."""
    public = {name: pickle.loads(pickle.dumps(value)) for name, value in vars(model).items()
              if name.endswith("_") and not name.startswith("_")}  # fmt: skip
    trainers = [
        (trainer.P.copy(), trainer.train_state.n_epochs, trainer.train_state.n_updates,
         trainer.cfg, trainer.run, trainer.backend, trainer.schedule,
         list(trainer.result.loss_history))
        for trainer in model._trainers
    ]  # fmt: skip
    return public, trainers, model._engine_loss, [id(t) for t in model._trainers]


def _assert_same_state(before, after):
    (public, trainers, loss, ids), (public2, trainers2, loss2, ids2) = before, after
    assert sorted(public) == sorted(public2)
    for name in public:
        np.testing.assert_array_equal(public2[name], public[name], err_msg=name)
    assert loss2 == loss and ids2 == ids
    for old, new in zip(trainers, trainers2, strict=True):
        np.testing.assert_array_equal(new[0], old[0])
        assert new[1:] == old[1:]


@pytest.mark.parametrize("make", [MiniBatchRegressor, MiniBatchClassifier],
                         ids=["regressor", "classifier"])  # fmt: skip
@pytest.mark.parametrize("mode", ["fit", "warm_start", "partial_fit"])
@pytest.mark.parametrize("frame", [False, True], ids=["array", "dataframe"])
@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_a_rejected_call_leaves_the_estimator_as_it_was(make, mode, frame):
    X, y = classification_problem(2) if make is MiniBatchClassifier else regression_problem()
    if frame:
        pd = pytest.importorskip("pandas")
        X = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = make(epochs=3, random_state=0, warm_start=mode == "warm_start")
    extra = {"classes": np.unique(y)} if make is MiniBatchClassifier else {}
    if mode == "partial_fit":
        model.partial_fit(X, y, **extra)
    else:
        model.fit(X, y)
    params = model.get_params()
    before, predictions = _fitted_state(model), model.predict(X)
    for name, bad_X, bad_y, settings in _bad_calls(make, mode):
        model.set_params(**settings)
        try:
            getattr(model, "partial_fit" if mode == "partial_fit" else "fit")(bad_X, bad_y)
        except (ValueError, TypeError):
            pass
        else:
            pytest.fail(f"{name} was accepted")
        model.set_params(**params)
        _assert_same_state(before, _fitted_state(model))
        np.testing.assert_array_equal(model.predict(X), predictions, err_msg=name)
    # And it trains on as if the refused calls had never been made.
    untouched = make(epochs=3, random_state=0, warm_start=mode == "warm_start")
    if mode == "partial_fit":
        untouched.partial_fit(X, y, **extra)
        model.partial_fit(X, y), untouched.partial_fit(X, y)
    else:
        untouched.fit(X, y)
        model.fit(X, y), untouched.fit(X, y)
    np.testing.assert_array_equal(model.coef_, untouched.coef_)
    np.testing.assert_array_equal(model.intercept_, untouched.intercept_)


@pytest.mark.parametrize("make", [MiniBatchRegressor, MiniBatchClassifier],
                         ids=["regressor", "classifier"])  # fmt: skip
@given(width=st.integers(1, 9).filter(lambda d: d != 4), n=st.integers(1, 30),
       bad=st.sampled_from([np.nan, np.inf, -np.inf]), where=st.data(),
       sparse=st.booleans(), warm_start=st.booleans())  # fmt: skip
def test_a_refit_on_non_finite_X_of_any_width_changes_nothing(make, width, n, bad, where,
                                                              sparse, warm_start):  # fmt: skip
    X, y = classification_problem(2) if make is MiniBatchClassifier else regression_problem()
    model = make(epochs=2, random_state=0, warm_start=warm_start).fit(X, y)
    before, predictions = _fitted_state(model), model.predict(X)
    new_X = np.random.default_rng(n).normal(size=(n, width))
    new_X[where.draw(st.integers(0, n - 1)), where.draw(st.integers(0, width - 1))] = bad
    if sparse:
        new_X = scipy.sparse.csr_matrix(new_X)
    with pytest.raises(ValueError):
        model.fit(new_X, y[:n])
    _assert_same_state(before, _fitted_state(model))
    np.testing.assert_array_equal(model.predict(X), predictions)


# --- coef_init / intercept_init (issue 16 item 9) --------------------------------


def _sklearn_sgd(estimator, **settings):
    # scikit-learn's plain SGD at fastgd's batch_size=1, shuffle=False,
    # constant rate. It trains coef_init in place (scikit-learn 1.9), so
    # the tests hand it copies.
    return estimator(learning_rate="constant", penalty=None, alpha=0.0, shuffle=False,
                     tol=None, **settings)  # fmt: skip


@pytest.mark.parametrize("backend", fastgd.available_backends())
def test_initial_parameters_match_scikit_learn(backend):
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([1.0, 2.0, 3.0]) + 1.0
    coef, intercept = np.array([0.5, -0.5, 0.25]), 0.75
    for epochs in (1, 3):
        expected = _sklearn_sgd(SGDRegressor, eta0=0.01, max_iter=epochs).fit(
            X, y, coef_init=coef.copy(), intercept_init=intercept)  # fmt: skip
        model = MiniBatchRegressor(lr=0.01, batch_size=1, shuffle=False, epochs=epochs,
                                   backend=backend).fit(X, y, coef_init=coef,
                                                        intercept_init=intercept)  # fmt: skip
        np.testing.assert_allclose(model.coef_, expected.coef_, rtol=1e-10)
        np.testing.assert_allclose(model.intercept_, expected.intercept_, rtol=1e-10)
        np.testing.assert_array_equal(coef, [0.5, -0.5, 0.25])  # fastgd leaves it alone
    labels = np.array([0, 1, 2] * 20)
    C, b = rng.normal(size=(3, 3)), rng.normal(size=3)
    expected = _sklearn_sgd(SGDClassifier, loss="hinge", eta0=0.01, max_iter=2).fit(
        X, labels, coef_init=C.copy(), intercept_init=b.copy())  # fmt: skip
    model = MiniBatchClassifier(loss="hinge", lr=0.01, batch_size=1, shuffle=False, epochs=2,
                                backend=backend).fit(X, labels, coef_init=C,
                                                     intercept_init=b)  # fmt: skip
    np.testing.assert_allclose(model.coef_, expected.coef_, rtol=1e-10)
    np.testing.assert_allclose(model.intercept_, expected.intercept_, rtol=1e-10)


def test_initial_parameters_of_every_model_shape():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 2))
    # A rate too small to move them keeps the initial values, in the
    # public shapes of a binary and a multinomial model.
    for labels, shape in ((np.array([0, 1] * 20), (1, 2)), (np.array([0, 1, 2, 3] * 10), (4, 2))):
        C = rng.normal(size=shape)
        b = rng.normal(size=shape[0])
        model = MiniBatchClassifier(epochs=1, lr=1e-12, random_state=0).fit(
            X, labels, coef_init=C, intercept_init=b)  # fmt: skip
        np.testing.assert_allclose(model.coef_, C, atol=1e-9)
        np.testing.assert_allclose(model.intercept_, b, atol=1e-9)
    binary = MiniBatchClassifier(epochs=1, lr=1e-12, random_state=0).fit(
        X, np.array([0, 1] * 20), coef_init=np.array([3.0, -3.0]), intercept_init=2.0)  # fmt: skip
    np.testing.assert_allclose(binary.coef_, [[3.0, -3.0]], atol=1e-9)
    np.testing.assert_allclose(binary.intercept_, [2.0], atol=1e-9)


def test_initial_parameters_start_a_new_fit_also_with_warm_start():
    X, y = regression_problem()
    model = MiniBatchRegressor(warm_start=True, epochs=3, random_state=0).fit(X, y)
    restarted = model.fit(X, y, coef_init=np.zeros(X.shape[1]))
    fresh = MiniBatchRegressor(epochs=3, random_state=0).fit(X, y)
    np.testing.assert_array_equal(restarted.coef_, fresh.coef_)
    assert restarted.n_iter_ == 3


@pytest.mark.parametrize(
    "init, error, match",
    [
        (dict(coef_init=np.ones(5)), ValueError, r"coef_init must have shape \(1, 4\) or \(4,\)"),
        (dict(coef_init=np.array([1.0, np.nan, 0.0, 0.0])), ValueError, "finite"),
        (dict(coef_init=np.full(4, 1e300)), None, None),
        (dict(coef_init=np.array(list("abcd"))), TypeError, "real numbers"),
        (dict(intercept_init=np.ones(2)), ValueError, "intercept_init must have shape"),
        (dict(intercept_init=np.inf), ValueError, "finite in float64"),
    ],
)
def test_bad_initial_parameters_are_refused_before_training(init, error, match):
    X, y = regression_problem()
    model = MiniBatchRegressor(epochs=1, random_state=0).fit(X, y)
    before = model.coef_.copy()
    if error is None:  # finite in float64, refused in float32
        with pytest.raises(ValueError, match="finite in float32"):
            model.fit(X.astype(np.float32), y, **init)
    else:
        with pytest.raises(error, match=match):
            model.fit(X, y, **init)
    np.testing.assert_array_equal(model.coef_, before)
