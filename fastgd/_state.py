"""Portable training state, and the row order each epoch derives from it.

A :class:`TrainState` is everything one model's training has accumulated:
parameters, optimizer state, counters, and the seed that decides every
epoch's row order. It is small (nothing in it is n_samples long), picklable
and independent of the data and the settings, so any driver can advance it
(``fastgd._engine.advance``), save it, and continue it elsewhere.

The row order of epoch ``e`` is a function of ``(seed, e)`` alone, never of
the order of the epoch before: a fit interrupted after k epochs, pickled and
continued in another process visits the same rows as an uninterrupted one,
and an epoch rolled back (diverged, interrupted) is re-run over the same rows.
"""

from dataclasses import dataclass

import numpy as np

from ._config import N_STATE_SLOTS
from ._validation import check_random_state


def row_order_dtype(n_samples):
    """int32 indices where they fit: half the memory traffic of int64."""
    return np.int32 if n_samples < 2**31 else np.int64


# Width of the 2-D view through which fill_identity writes 0..n-1: its
# temporaries are this long and n / this long, never n-sized.
_IDENTITY_WIDTH = 4096


def fill_identity(order):
    """Write ``0..n-1`` into ``order`` in one pass, without an n-sized temporary."""
    n = order.shape[0]
    if n <= _IDENTITY_WIDTH:
        order[:] = np.arange(n)
        return
    width = _IDENTITY_WIDTH
    n_full = n // width
    np.add((np.arange(n_full) * width)[:, None], np.arange(width),
           out=order[: n_full * width].reshape(n_full, width), casting="unsafe")  # fmt: skip
    order[n_full * width :] = np.arange(n_full * width, n)


def shuffled_batches(order, rows, batch_size, seed):
    """Fill ``order`` with the rows' contiguous batches in a random batch order.

    ``rows`` is None for ``0..n-1``; ``seed`` a 64-bit integer. Only whole
    batches move: a last, partial batch stays last, so the kernel's cut of
    ``order`` into ``batch_size`` pieces still falls on batch boundaries.
    Nothing is allocated but the batches' numbers (``_compiled.batch_order``).
    """
    from ._compiled import batch_order

    return batch_order(order, seed, batch_size, rows)


def epoch_rng(seed, epoch):
    """The generator of epoch ``epoch``'s row order: a function of ``(seed, epoch)`` alone.

    PCG64 seeded by ``SeedSequence(seed)``, advanced by ``epoch · 2**64``
    draws: each epoch reads its own stretch of one stream (as
    ``PCG64.jumped`` does), reachable directly, so no epoch's order depends
    on another's. :meth:`RowOrder.draw` reaches the same stretch without
    reseeding (see :class:`EpochRNG`).
    """
    return EpochRNG(seed).at(epoch)


class EpochRNG:
    """:func:`epoch_rng` for one seed, without the cost of reseeding every epoch.

    Seeding PCG64 through a SeedSequence costs ~7 µs, several times a small
    epoch's kernel; putting back the seeded state and advancing costs ~1.5 µs.
    """

    def __init__(self, seed):
        self.seed = seed
        self._bit_generator = np.random.PCG64(np.random.SeedSequence(seed))
        self._seeded = self._bit_generator.state
        self._generator = np.random.Generator(self._bit_generator)

    def at(self, epoch):
        """The generator of epoch ``epoch`` (the same object each call, reset)."""
        self._bit_generator.state = self._seeded
        self._bit_generator.advance(int(epoch) << 64)
        return self._generator


class RowOrder:
    """The buffer an epoch's row order is written into, reused from epoch to epoch.

    A cache, never state: what it holds is rewritten from ``(seed, epoch)``
    whenever an epoch needs it, so it is not pickled (a loaded one starts
    empty) and a rolled-back epoch leaves nothing in it that matters.
    """

    def __init__(self):
        self.buffer = None
        self._rows = None
        self._rng = None
        # True while the buffer holds the rows in the data's order: epochs of
        # shuffle=False after shuffle=False epochs then write nothing at all.
        self._in_data_order = False

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()

    def draw(self, seed, epoch, shuffle, batch_size, n_total, rows=None):
        """Return the row order of epoch ``epoch`` (0-based).

        Parameters
        ----------
        seed : int
            :attr:`TrainState.seed`.
        epoch : int
            The epoch's number, counted from 0 over the model's life.
        shuffle : {True, False, 'batches'}
            A permutation of the rows (``_compiled.permute``), the rows in
            the data's order, or the data's contiguous ``batch_size``
            batches in a random order (``_compiled.batch_order``; a last,
            partial batch stays last).
        batch_size : int
            The epoch's batch size, at most the number of rows.
        n_total : int
            Rows of X (decides the index dtype).
        rows : ndarray of int or None
            The rows the epoch visits (default: all of X's, in order).

        Returns
        -------
        ndarray of shape (len(rows) or n_total,)
            The buffer itself (valid until the next call), int32 where the
            indices fit.
        """
        n = n_total if rows is None else rows.shape[0]
        buffer = self.buffer
        if buffer is None or buffer.shape[0] != n or rows is not self._rows:
            buffer = self.buffer = np.empty(n, dtype=row_order_dtype(n_total))
            self._rows, self._in_data_order = rows, False
        if shuffle is not False:
            if self._rng is None or self._rng.seed != seed:
                self._rng = EpochRNG(seed)
            # The epoch's permutation (of the rows, or of the batches) is
            # drawn from a 64-bit seed: the first draw of the epoch's stream.
            epoch_seed = int(self._rng.at(epoch).bit_generator.random_raw())
        if shuffle is True:
            from ._compiled import permute

            permute(buffer, epoch_seed, rows)
        elif shuffle == "batches":
            shuffled_batches(buffer, rows, batch_size, epoch_seed)
        elif not self._in_data_order:
            # The rows back in their order, never the previous epoch's.
            if rows is None:
                fill_identity(buffer)
            else:
                buffer[:] = rows
        self._in_data_order = shuffle is False
        return buffer


def draw_seed(random_state):
    """The row-order seed that ``random_state`` gives: 128 bits drawn from its generator.

    An integer seed and ``np.random.default_rng`` of it give the same seed;
    a Generator advances by that one draw; None draws fresh entropy.
    """
    return int.from_bytes(check_random_state(random_state).bytes(16), "little")


@dataclass
class TrainState:
    """One model's training as it stands between epochs: small, picklable, portable.

    Everything an epoch reads and changes besides the data and the settings.
    Nothing in it is n_samples long, and nothing carries one epoch's row
    order to the next: epoch ``e`` visits rows in an order derived from
    ``(seed, e)`` alone (see :class:`RowOrder`), so a state pickled after k
    epochs and continued in another process gives, bit for bit, the fit of an
    uninterrupted run.

    Attributes
    ----------
    P : ndarray of shape (K, n_features + 1)
        Parameters: each output's weights, then its intercept.
    optimizer_state : ndarray of shape (N_STATE_SLOTS, K, n_features + 1)
        Everything else the updates keep per parameter, of P's dtype: the
        optimizer's moments (momentum, Adam's, ...), the parameters' running
        average and the cumulative L1 penalty (``_config.STATE_SLOTS``).
    n_epochs : int
        Epochs completed; the number of the next epoch (0-based), which
        decides its row order and its per-epoch learning rate.
    n_updates : int
        Parameter updates made: the clock of ``invscaling`` and Adam.
    seed : int
        The row-order seed (see :func:`draw_seed`).
    lr_factor : float
        What every epoch's base rate is multiplied by: 1, divided by 5 at
        each plateau of ``schedule='adaptive'`` (``fastgd._schedule``).
    first_loss, first_scale : float
        The first epoch's mean loss and largest absolute parameter (NaN
        before it): what later epochs' growth is measured against
        (``fastgd._engine.GROWTH_BOUND``).
    """

    P: np.ndarray
    optimizer_state: np.ndarray
    n_epochs: int = 0
    n_updates: int = 0
    seed: int = 0
    first_loss: float = float("nan")
    first_scale: float = float("nan")
    lr_factor: float = 1.0

    @classmethod
    def zeros(cls, n_features, n_outputs, dtype, random_state=None):
        """A model before its first epoch: zero parameters and state, counters at 0.

        ``random_state`` (an int, a Generator or None) gives the row-order
        seed; see :func:`draw_seed`.
        """
        return cls(
            P=np.zeros((n_outputs, n_features + 1), dtype=dtype),
            optimizer_state=np.zeros((N_STATE_SLOTS, n_outputs, n_features + 1), dtype=dtype),
            seed=draw_seed(random_state),
        )

    def copy(self):
        """An independent copy (the arrays copied)."""
        return TrainState(self.P.copy(), self.optimizer_state.copy(), self.n_epochs,
                          self.n_updates, self.seed, self.first_loss,
                          self.first_scale, self.lr_factor)  # fmt: skip

    def restore(self, other):
        """Become ``other`` again, in place (the arrays keep their identity)."""
        self.P[...] = other.P
        self.optimizer_state[...] = other.optimizer_state
        self.n_epochs, self.n_updates, self.seed = other.n_epochs, other.n_updates, other.seed
        self.first_loss, self.first_scale = other.first_loss, other.first_scale
        self.lr_factor = other.lr_factor
