"""What a fit returns: the parameters, the history, and prediction."""

from dataclasses import dataclass, field

import numpy as np

from ._config import CLASSIFICATION_LOSSES, PROBABILISTIC_LOSSES
from ._validation import check_X


def softmax(Z):
    """Row-wise softmax of scores ``Z`` of shape (n, K), without overflow."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def modified_huber_proba(scores):
    """scikit-learn's ``SGDClassifier`` probabilities of ``modified_huber`` scores."""
    if scores.ndim == 1:
        positive = (np.clip(scores, -1.0, 1.0) + 1.0) / 2.0
        return np.column_stack([1.0 - positive, positive])
    proba = (np.clip(scores, -1.0, 1.0) + 1.0) / 2.0
    total = proba.sum(axis=1)[:, None]
    empty = total == 0.0
    proba /= np.where(empty, 1.0, total)
    proba[np.broadcast_to(empty, proba.shape)] = 1.0 / proba.shape[1]
    return proba


def sigmoid(z):
    """Logistic function without overflow warnings."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass
class FitResult:
    """The outcome of :func:`fastgd.fit`.

    Attributes
    ----------
    coef : ndarray of shape (n_features,) or (K, n_features)
        Weights; 1-D for a regression of 1-D y and binary classification
        (K = 1); 2-D for multinomial, one-vs-rest (K classes) and a
        regression of 2-D y (K columns, even K = 1).
    intercept : float or ndarray of shape (K,)
    loss_history : list of float
        One value per epoch: the mean over that epoch's batches of the batch's
        mean training loss (without the penalty), measured with the parameters
        each batch saw before its update.
    n_epochs : int
        Epochs run (fewer than ``epochs`` when ``tol`` stopped training).
    n_updates : int
        Parameter updates made (one per batch).
    converged : bool
        True when the ``tol`` rule stopped training before ``epochs``.
    epoch_seconds : list of float
        Wall time of each epoch's backend call.
    loss : str
        The loss that was minimised; decides what ``predict`` returns.
    state : TrainState or None
        The training state as of the last completed epoch (parameters,
        optimizer state, counters, row-order seed): small and picklable, it
        is what a driver continues from (``fastgd._engine.advance``). None
        for a result built from parameters alone.
    """

    coef: np.ndarray
    intercept: object
    loss_history: list = field(default_factory=list)
    n_epochs: int = 0
    n_updates: int = 0
    converged: bool = False
    epoch_seconds: list = field(default_factory=list)
    loss: str = "squared_error"
    state: object = field(default=None, repr=False, compare=False)

    @property
    def n_features(self):
        return self.coef.shape[-1]

    def decision_function(self, X):
        """Raw scores ``X · coef + intercept``.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, K)
        """
        X = check_X(X, dtype=self.coef.dtype)
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, but this model is expecting "
                f"{self.n_features} features as input."
            )
        return X @ self.coef.T + self.intercept

    def predict(self, X):
        """Predicted targets (regression) or class codes (classification).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, K)
            Real values for the regression losses (2-D for a 2-D y); class
            codes (0/1, or 0..K-1 for multinomial and one-vs-rest) as int64
            for the classification losses.
        """
        scores = self.decision_function(X)
        if self.loss not in CLASSIFICATION_LOSSES:
            return scores
        if scores.ndim == 2:
            return scores.argmax(axis=1)
        return (scores > 0).astype(np.int64)

    def predict_proba(self, X):
        """Class probabilities, for ``log_loss``, ``multinomial`` and ``modified_huber``.

        ``modified_huber``'s are scikit-learn's (``SGDClassifier``): one
        output gives ``(clip(score, -1, 1) + 1) / 2`` for class 1; K
        one-vs-rest outputs give that per class, each row normalised to sum 1
        (a row that is all 0 gets ``1 / K`` everywhere).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in class-code order; each row sums to 1.
        """
        if self.loss not in PROBABILISTIC_LOSSES:
            raise AttributeError(
                f"predict_proba is not available for loss={self.loss!r}; it needs "
                f"one of {', '.join(map(repr, PROBABILISTIC_LOSSES))}."
            )
        scores = self.decision_function(X)
        if self.loss == "modified_huber":
            return modified_huber_proba(scores)
        if scores.ndim == 2:
            return softmax(scores)
        positive = sigmoid(scores)
        return np.column_stack([1.0 - positive, positive])

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``: ``-inf`` where a probability is 0.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))
