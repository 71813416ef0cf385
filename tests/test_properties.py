"""Property-based checks over shapes and edge sizes (hypothesis).

n = 1, d = 1, a batch larger than n and a single class all come up; whatever
the draw, every compiled backend agrees with the reference and stays finite.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastgd
from fastgd._config import LOSSES, OPTIMIZERS, PENALTIES

from support import (
    COMPILED_BACKENDS,
    N_CLASSES,
    REFERENCE_BACKEND,
    assert_same_fit,
    make_targets,
    rtol_for,
)

settings_strategy = st.sampled_from([np.float32, np.float64]).flatmap(
    lambda dtype: st.fixed_dictionaries(
        {
            "n": st.integers(1, 30),
            "d": st.integers(1, 5),
            "batch_size": st.integers(1, 40),
            "loss": st.sampled_from(LOSSES),
            "optimizer": st.sampled_from(OPTIMIZERS),
            "penalty": st.sampled_from(PENALTIES),
            "dtype": st.just(dtype),
            "fit_intercept": st.booleans(),
            "drop_last": st.booleans(),
            "shuffle": st.booleans(),
            "seed": st.integers(0, 2**32 - 1),
        }
    )
)


def draw_problem(s):
    rng = np.random.default_rng(s["seed"])
    X = rng.standard_normal((s["n"], s["d"]))
    y = make_targets(s["loss"], X, rng)
    return np.ascontiguousarray(X, dtype=s["dtype"]), y


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@given(s=settings_strategy)
def test_compiled_backends_match_reference_on_any_shape(backend, s):
    X, y = draw_problem(s)
    arguments = dict(
        loss=s["loss"], optimizer=s["optimizer"], penalty=s["penalty"],
        batch_size=s["batch_size"], fit_intercept=s["fit_intercept"],
        drop_last=s["drop_last"], shuffle=s["shuffle"], lr=0.05, alpha=0.01,
        l1_ratio=0.5, epochs=3, random_state=s["seed"],
        # n may be too small to show every class; the model keeps all of them.
        n_classes=N_CLASSES if s["loss"] == "multinomial" else None,
    )  # fmt: skip
    result = fastgd.fit(X, y, backend=backend, **arguments)
    expected = fastgd.fit(X, y, backend=REFERENCE_BACKEND, **arguments)

    for fitted in (result, expected):
        assert np.all(np.isfinite(fitted.coef))
        assert np.all(np.isfinite(fitted.intercept))
        assert np.all(np.isfinite(fitted.loss_history))
        assert fitted.coef.dtype == s["dtype"]
        assert fitted.coef.shape[-1] == s["d"]
    size = min(s["batch_size"], s["n"])
    per_epoch = s["n"] // size if s["drop_last"] else -(-s["n"] // size)
    assert result.n_updates == 3 * per_epoch
    assert_same_fit(result, expected, rtol_for(s["dtype"]))
