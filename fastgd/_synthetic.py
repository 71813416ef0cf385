"""The built-in synthetic problem used by the demo, the bench and the tests."""

import numpy as np

from ._validation import check_option

TASKS = ("regression", "binary", "multiclass")


def make_problem(n_samples, n_features, *, task="regression", n_classes=3,
                 dtype=np.float64, noise=0.1, random_state=0):  # fmt: skip
    """Draw a well-conditioned linear problem of the given size.

    Rows are standard normal; targets come from a random linear model, with
    Gaussian noise (regression) or as the class of the largest noisy score
    (binary: codes 0/1, multiclass: codes 0..n_classes-1). X is generated in
    blocks straight into ``dtype``, so a float32 problem never holds a float64
    copy of X.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    """
    check_option("task", task, TASKS)
    rng = np.random.default_rng(random_state)
    X = np.empty((n_samples, n_features), dtype=dtype)
    for start in range(0, n_samples, 1 << 16):
        block = X[start : start + (1 << 16)]
        rng.standard_normal(out=block, dtype=block.dtype)
    n_outputs = n_classes if task == "multiclass" else 1
    W = rng.standard_normal((n_features, n_outputs)) / np.sqrt(n_features)
    scores = X @ W.astype(dtype) + noise * rng.standard_normal((n_samples, n_outputs))
    if task == "regression":
        y = scores[:, 0]
    elif task == "binary":
        y = (scores[:, 0] > 0).astype(dtype)
    else:
        y = scores.argmax(axis=1).astype(dtype)
    return X, np.ascontiguousarray(y, dtype=dtype)
