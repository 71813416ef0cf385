"""Reproducibility: the seed decides the row order, and nothing else varies.

The same ``random_state`` gives bit-identical results in one process and
across processes; ``random_state=None`` gives a different result every run.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastgd

from support import make_problem

SETTINGS = dict(loss="log_loss", optimizer="adam", penalty="elasticnet", batch_size=1,
                lr=0.05, alpha=0.01, epochs=4)  # fmt: skip


def fit(backend, dtype, **overrides):
    X, y = make_problem("log_loss", dtype)
    return fastgd.fit(X, y, backend=backend, **dict(SETTINGS, **overrides))


def assert_bit_identical(a, b):
    np.testing.assert_array_equal(a.coef, b.coef, strict=True)
    np.testing.assert_array_equal(a.intercept, b.intercept, strict=True)
    assert a.loss_history == b.loss_history


def test_same_random_state_gives_bit_identical_fits(backend, dtype):
    assert_bit_identical(fit(backend, dtype, random_state=7), fit(backend, dtype, random_state=7))


def test_a_seeded_generator_gives_the_same_fit_as_its_seed(backend):
    by_seed = fit(backend, np.float64, random_state=7)
    by_generator = fit(backend, np.float64, random_state=np.random.default_rng(7))
    assert_bit_identical(by_seed, by_generator)


def test_different_random_states_give_different_fits_when_shuffling(backend, dtype):
    a = fit(backend, dtype, random_state=1)
    b = fit(backend, dtype, random_state=2)
    assert not np.array_equal(a.coef, b.coef)
    assert a.loss_history != b.loss_history


def test_random_state_has_no_effect_without_shuffle(backend):
    a = fit(backend, np.float64, random_state=1, shuffle=False)
    b = fit(backend, np.float64, random_state=2, shuffle=False)
    assert_bit_identical(a, b)


@pytest.mark.parametrize("random_state", [None, 3])
def test_shuffle_changes_the_visiting_order(backend, random_state):
    shuffled = fit(backend, np.float64, random_state=random_state)
    in_order = fit(backend, np.float64, random_state=random_state, shuffle=False)
    assert not np.array_equal(shuffled.coef, in_order.coef)


def test_random_state_none_differs_from_run_to_run(backend, dtype):
    fits = [fit(backend, dtype, random_state=None) for _ in range(3)]
    for a, b in zip(fits, fits[1:]):
        assert not np.array_equal(a.coef, b.coef)
        assert a.loss_history != b.loss_history


def test_estimators_follow_random_state_too(backend):
    pytest.importorskip("sklearn")
    X, y = make_problem("log_loss", np.float64)
    settings = {key: value for key, value in SETTINGS.items() if key != "loss"}

    def coef(random_state):
        model = fastgd.MiniBatchClassifier(backend=backend, random_state=random_state,
                                           **settings)  # fmt: skip
        return model.fit(X, y).coef_

    np.testing.assert_array_equal(coef(7), coef(7), strict=True)
    assert not np.array_equal(coef(None), coef(None))


CHILD = """
import hashlib, sys
import fastgd
sys.path.insert(0, sys.argv[1])
from support import make_problem
X, y = make_problem("log_loss", {dtype})
for backend in fastgd.available_backends():
    for random_state in (7, None):
        r = fastgd.fit(X, y, backend=backend, random_state=random_state, **{settings!r})
        print(backend, random_state, hashlib.sha256(r.coef.tobytes()).hexdigest())
"""


@pytest.mark.parametrize("dtype", ["np.float64", "np.float32"])
def test_same_random_state_is_bit_identical_across_processes(dtype):
    tests = str(Path(__file__).resolve().parent)
    root = str(Path(fastgd.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        root, os.environ.get("PYTHONPATH")]))}  # fmt: skip
    code = "import numpy as np\n" + CHILD.format(dtype=dtype, settings=SETTINGS)
    runs = []
    for _ in range(2):
        run = subprocess.run([sys.executable, "-c", code, tests], capture_output=True,
                             text=True, env=env)  # fmt: skip
        assert run.returncode == 0, run.stderr
        runs.append(dict((" ".join(line.split()[:2]), line.split()[2])
                         for line in run.stdout.splitlines()))  # fmt: skip
    assert len(runs[0]) == 2 * len(fastgd.available_backends())
    for key in runs[0]:
        if key.endswith(" 7"):
            assert runs[0][key] == runs[1][key], key
        else:
            assert runs[0][key] != runs[1][key], key
