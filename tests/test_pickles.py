"""A pickled model needs no backend until it trains again.

Prediction is NumPy alone (``FitResult``), so a model trained with
``backend="cython"`` or ``"numba"`` loads and predicts where that backend is
not installed; its backend is looked up only when training continues
(``partial_fit``, ``fit`` with ``warm_start``, ``Trainer.epoch``), which then
raises ``get_backend``'s ImportError saying how to install it. Checked in
this process, the backend's module made unimportable as
``test_cython_backend.extension_missing`` does, and in a fresh interpreter
where neither Numba nor the Cython extension can be imported at all.
"""

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastgd
from fastgd import backends

from support import COMPILED_BACKENDS, make_problem

pytest.importorskip("sklearn")

# What get_backend's message says for each backend made missing.
HOW_TO_INSTALL = {
    "numba": r"backend='numba'.*pip install numba",
    "cython": r"backend='cython'.*C compiler.*pip install",
}
KINDS = ("regressor", "classifier", "classifier-hinge")
METHODS = {
    "regressor": ("predict",),
    "classifier": ("predict", "predict_proba", "decision_function"),
    "classifier-hinge": ("predict", "decision_function"),
}


def problem(kind):
    if kind.startswith("classifier"):
        return make_problem("multinomial", np.float64)
    return make_problem("squared_error", np.float64)


def trained(kind, backend):
    """A model of ``kind`` fitted on ``backend`` (log_loss on 3 classes: multinomial;
    hinge: one-vs-rest, three outputs)."""
    X, y = problem(kind)
    common = dict(backend=backend, epochs=3, batch_size=8, random_state=0, optimizer="adam")
    if kind == "regressor":
        return fastgd.MiniBatchRegressor(**common).fit(X, y)
    loss = "hinge" if kind.endswith("hinge") else "log_loss"
    return fastgd.MiniBatchClassifier(loss=loss, **common).fit(X, y)


def outputs(model, kind, X, y):
    found = {name: getattr(model, name)(X) for name in METHODS[kind]}
    found["score"] = model.score(X, y)
    return found


def assert_same_outputs(actual, expected):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, strict=True, err_msg=name)


@pytest.fixture
def make_missing(monkeypatch):
    """Call with a backend's name: from then on its module cannot be imported."""

    def make(backend):
        # None in sys.modules makes ``import`` raise ImportError, as a
        # missing extension module (or a missing Numba) does.
        monkeypatch.setitem(sys.modules, backends.BACKEND_MODULES[backend], None)
        with pytest.raises(ImportError):
            backends.get_backend(backend)

    make.undo = monkeypatch.undo
    return make


@pytest.mark.parametrize("kind", KINDS)
def test_an_estimator_loads_and_predicts_without_its_backend(make_missing, compiled_backend,
                                                             kind):  # fmt: skip
    X, y = problem(kind)
    model = trained(kind, compiled_backend)
    expected = outputs(model, kind, X, y)
    blob = pickle.dumps(model)
    make_missing(compiled_backend)

    loaded = pickle.loads(blob)
    assert_same_outputs(outputs(loaded, kind, X, y), expected)
    np.testing.assert_array_equal(loaded.coef_, model.coef_, strict=True)

    # Training on needs the backend, and says how to install it.
    first = {"classes": np.unique(y)} if kind.startswith("classifier") else {}
    with pytest.raises(ImportError, match=HOW_TO_INSTALL[compiled_backend]):
        loaded.partial_fit(X, y, **first)
    with pytest.raises(ImportError, match=HOW_TO_INSTALL[compiled_backend]):
        loaded.set_params(warm_start=True).fit(X, y)
    # ... and the refusal leaves the model as it was.
    assert loaded.n_iter_ == model.n_iter_
    assert_same_outputs(outputs(loaded, kind, X, y), expected)

    # Once the backend is back, the loaded model trains on as the original does.
    make_missing.undo()
    loaded.set_params(warm_start=False).partial_fit(X, y, **first)
    model.partial_fit(X, y, **first)
    assert_same_outputs(outputs(loaded, kind, X, y), outputs(model, kind, X, y))


def test_a_fit_result_and_a_trainer_load_and_predict_without_their_backend(
    make_missing, compiled_backend
):
    X, y = problem("regressor")
    result = fastgd.fit(X, y, backend=compiled_backend, epochs=2, random_state=0)
    trainer = trained("regressor", compiled_backend)._trainers[0]
    blobs = pickle.dumps(result), pickle.dumps(trainer)
    make_missing(compiled_backend)

    loaded_result, loaded_trainer = map(pickle.loads, blobs)
    np.testing.assert_array_equal(loaded_result.predict(X), result.predict(X), strict=True)
    np.testing.assert_array_equal(
        loaded_trainer.result.predict(X), trainer.result.predict(X), strict=True
    )
    assert loaded_trainer.train_state.n_epochs == trainer.train_state.n_epochs
    with pytest.raises(ImportError, match=HOW_TO_INSTALL[compiled_backend]):
        loaded_trainer.epoch(X, y)
    assert loaded_trainer.train_state.n_epochs == trainer.train_state.n_epochs
    # Looked up on first use, not on load: it trains once the backend is back.
    make_missing.undo()
    loaded_trainer.epoch(X, y)
    trainer.epoch(X, y)
    np.testing.assert_array_equal(loaded_trainer.P, trainer.P, strict=True)


# A fresh interpreter where Numba and the Cython extension cannot be imported.
CHILD = """
import pickle, sys
sys.modules["numba"] = None
sys.modules["fastgd.backends._cython_kernels"] = None
import fastgd
assert fastgd.available_backends() == ["numpy"], fastgd.available_backends()
with open(sys.argv[1], "rb") as f:
    jobs = pickle.load(f)
done = {}
for name, (blob, methods, X, y, first) in jobs.items():
    model = pickle.loads(blob)
    found = {method: getattr(model, method)(X) for method in methods}
    found["score"] = model.score(X, y)
    try:
        model.partial_fit(X, y, **first)
    except ImportError as exc:
        found["partial_fit"] = str(exc)
    done[name] = found
with open(sys.argv[2], "wb") as f:
    pickle.dump(done, f)
"""


def test_models_load_and_predict_where_no_compiled_backend_imports(tmp_path):
    jobs, expected = {}, {}
    for backend in COMPILED_BACKENDS:
        for kind in KINDS:
            X, y = problem(kind)
            model = trained(kind, backend)
            first = {"classes": np.unique(y)} if kind.startswith("classifier") else {}
            jobs[kind, backend] = (pickle.dumps(model), METHODS[kind], X, y, first)
            expected[kind, backend] = outputs(model, kind, X, y)
    with open(tmp_path / "jobs.pkl", "wb") as f:
        pickle.dump(jobs, f)
    root = str(Path(fastgd.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        root, os.environ.get("PYTHONPATH")]))}  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "jobs.pkl"), str(tmp_path / "done.pkl")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    with open(tmp_path / "done.pkl", "rb") as f:
        done = pickle.load(f)
    for (kind, backend), found in done.items():
        message = found.pop("partial_fit", None)
        assert message is not None, f"{kind} on {backend}: partial_fit trained without it"
        assert re.search(HOW_TO_INSTALL[backend], message), message
        assert_same_outputs(found, expected[kind, backend])


def test_a_trainer_pickled_before_the_schedule_read_alpha_trains_on():
    # Such a pickle holds the five-value schedule of (schedule, lr, decay,
    # step_size, gamma); the loaded Trainer trains on as a new one does.
    from fastgd import MiniBatchRegressor

    X, y = make_problem("squared_error", np.float64)
    settings = dict(epochs=2, tol=None, random_state=0, backend="numpy")
    model = MiniBatchRegressor(**settings).fit(X, y)
    trainer = model._trainers[0]
    trainer.schedule = trainer.schedule[:5]
    loaded = pickle.loads(pickle.dumps(model))
    assert len(loaded._trainers[0].schedule) == 6
    loaded.partial_fit(X, y)
    expected = MiniBatchRegressor(**dict(settings, epochs=3)).fit(X, y)
    np.testing.assert_array_equal(loaded.coef_, expected.coef_)
