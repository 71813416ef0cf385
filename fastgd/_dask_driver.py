"""The Dask driver: fastgd's engine over the blocks of rows of a Dask cluster.

One driver, two strategies, both built from the engine's own pieces:

- ``"average"`` (local SGD with model averaging): each round every block
  runs :func:`fastgd._engine.advance` over its rows from the broadcast
  :class:`~fastgd._state.TrainState`; the driver averages the blocks'
  parameters and optimizer state weighted by rows, in block order.
- ``"gradient"`` (exact full-batch GD): each step every block computes its
  loss sum and gradient sum with the backend's ``batch_gradient``; the sums
  are tree-reduced in block order and the driver makes one ``apply_update``.

The unit of work is a block, never a worker: a block's task depends only on
the block, its index and the broadcast state, and every reduction runs in
block order, so the result depends on the data, the chunking, the seed and
the settings alone. Each epoch goes through ``Trainer.record`` (all or
nothing) and the epochs through ``_engine.train`` (tol, callback, Ctrl-C), as
in ``fastgd.fit``.
"""

import functools
import time

import numpy as np

from ._dask_data import checked_blocks
from ._engine import Epoch, Trainer, advance, end_epoch
from ._config import slots_in_use
from ._settings import kernel_records
from ._state import RowOrder, row_order_dtype
from ._validation import shown
from .backends import get_backend

AVERAGE, GRADIENT = "average", "gradient"


# --- where tasks run ------------------------------------------------------------------


class LocalExecutor:
    """Dask's local scheduler: the checked blocks are held by this process."""

    def persist(self, tasks, near):
        import dask

        return list(dask.compute(*tasks))

    def broadcast(self, value, nbytes):
        return value

    def map(self, function, handles, *args):
        import dask

        # pure=False: no hashing of the blocks' data for task names.
        task = dask.delayed(function, pure=False)
        return list(dask.compute(*[task(h, i, *args) for i, h in enumerate(handles)]))

    def call(self, function, *args):
        return function(*args)

    def gather(self, handles):
        return handles


class ClientExecutor:
    """A ``distributed.Client``: blocks stay on the workers that computed them.

    A task given a block's future is scheduled where that block lives; the
    state it starts from goes with the tasks (``broadcast``). A block
    lost with its worker is recomputed from its graph by the scheduler (and
    the tasks that needed it rerun, with the same inputs, so the same bits);
    one that cannot be recomputed raises a RuntimeError, never a partial
    average.
    """

    def __init__(self, client):
        self.client = client

    def persist(self, tasks, near):
        """Compute ``tasks``, each on the worker that holds ``near``'s block of the same index.

        ``near`` are X's blocks (delayed): a block already computed on the
        cluster keeps its task on its worker (``allow_other_workers`` only
        should that worker be gone), so that it is the small y that moves to
        X, never X to y. A block not yet on the cluster leaves the choice to
        the scheduler.
        """
        from distributed import futures_of, wait

        held = futures_of(near)
        wait(held)
        holders = self.client.who_has(held) if held else {}
        compute = self.client.compute
        return [compute(task, workers=holders[block.key], allow_other_workers=True)
                if holders.get(block.key) else compute(task)
                for task, block in zip(tasks, near)]  # fmt: skip

    def broadcast(self, value, nbytes):
        """``value`` for the tasks of a round: itself when small, else a task that holds it.

        A value of at most :data:`INLINE_BYTES` travels inside each task,
        which then starts at once. A larger one is held by a task of its own
        that the blocks' tasks depend on, so it travels once to one worker
        and from there once to each other worker that needs it, at the cost
        of that task's round trip first. Not ``client.scatter(broadcast=True)``:
        a scatter to a cluster that has just lost a worker can wait on it,
        and scattered data cannot be recomputed, while the task is rerun
        from its argument.
        """
        if nbytes <= INLINE_BYTES:
            return value
        return self.client.submit(held, value, pure=False)

    def map(self, function, handles, *args):
        # One client.map: the round's tasks reach the scheduler in one message.
        n = len(handles)
        return self.client.map(function, handles, range(n), *[[a] * n for a in args],
                               pure=False)  # fmt: skip

    def call(self, function, *args):
        return self.client.submit(function, *args, pure=False)

    def gather(self, handles):
        from distributed.client import FutureCancelledError

        try:
            return self.client.gather(handles)
        except FutureCancelledError as exc:
            raise RuntimeError(
                "fastgd.dask: a block of X or y was lost with its worker and could not be "
                f"recomputed ({exc}); nothing was averaged. Build X and y from a graph Dask "
                "can recompute (dask.array.from_array, a file reader, dask.array.random) "
                "rather than from scattered data."
            ) from exc


# The largest broadcast value sent inside each task (ClientExecutor.broadcast).
INLINE_BYTES = 64 * 1024


def held(value):
    """A task's result that is its argument: a value for other tasks to depend on."""
    return value


def executor_of(client):
    """The executor of the ``client`` setting: given, the current one, or the local scheduler."""
    if client is None:
        try:
            from distributed import get_client
        except ImportError:
            return LocalExecutor()
        try:
            client = get_client()
        except ValueError:  # no client: Dask's local scheduler
            return LocalExecutor()
    else:
        from distributed import Client

        if not isinstance(client, Client):
            raise TypeError(
                f"client must be a distributed.Client or None; got {type(client).__name__} "
                f"{shown(client)}."
            )
    return ClientExecutor(client)


# Terms added by one task of tree_sum: one level for up to this many blocks,
# a level more for each factor of it (each level is a scheduler round trip).
TREE_WIDTH = 4


def tree_sum(executor, handles, add):
    """``add``-reduce ``handles`` in block order: groups of :data:`TREE_WIDTH`, level by level.

    The tree's shape depends on the number of blocks alone, so the order of
    the additions, and the float result, do not depend on where the blocks
    are; each group's task runs where its terms lie.
    """
    while len(handles) > 1:
        groups = [handles[i : i + TREE_WIDTH] for i in range(0, len(handles), TREE_WIDTH)]
        handles = [g[0] if len(g) == 1 else executor.call(fold, add, *g) for g in groups]
    return executor.gather(handles)[0]


def fold(add, *terms):
    """One group of :func:`tree_sum`, left to right: ``add(add(terms[0], terms[1]), …)``."""
    return functools.reduce(add, terms)


# --- the tasks ------------------------------------------------------------------------


def block_seed(seed, index):
    """The row-order seed of block ``index``: the state's own seed for block 0.

    Other blocks add ``index · 2**128`` (the state's seed has 128 bits), a
    distinct ``SeedSequence`` entropy per block, so the blocks' orders are
    independent, and a single block visits its rows in ``fastgd.fit``'s order.
    """
    return seed + (index << 128)


def round_rows(rows, round_, rounds):
    """``(start, stop)``: the rows of a block of ``rows`` that round ``round_`` of ``rounds`` takes."""
    return rows * round_ // rounds, rows * (round_ + 1) // rounds


def train_block(block, index, state, cfg, run, backend, shuffle, lr, round_, rounds, total):
    """Round ``round_`` of ``rounds`` of the state's epoch on one block: its term of the average.

    The block's epoch order is drawn from ``(block_seed, epoch)``; round r
    trains on its r-th consecutive slice (:func:`round_rows`) with
    ``advance``, from the broadcast state, at the epoch's base rate ``lr``.
    Returns the block's term of the round's average, its rows' share
    ``w = rows / total`` of the round's ``total`` rows times what it
    trained: ``(w·P, w·optimizer_state, updates, w·loss)``, which
    :func:`add_terms` adds up (a slice of no rows is all zeros); of the
    optimizer state, only the slots the settings write (``slots_in_use``).
    """
    X, y, sample_weight = block[0], block[1], block[2]
    state = state.copy()  # the broadcast state is shared by the worker's tasks
    t0 = state.n_updates
    state.seed = block_seed(state.seed, index)
    n = X.shape[0]
    order = RowOrder().draw(state.seed, state.n_epochs, shuffle, min(cfg.batch_size, n), n)
    rows = order[slice(*round_rows(n, round_, rounds))]
    slots = list(slots_in_use(cfg))
    if rows.shape[0] == 0:
        return np.zeros_like(state.P), np.zeros_like(state.optimizer_state[slots]), 0, 0.0
    # The slice is the round's whole order, visited as it is; ``shuffle``
    # tells the backend to prefetch its rows.
    loss = advance(state, X, y, get_backend(backend), cfg, run, shuffle=shuffle,
                   lr_schedule=lambda epoch: lr, rows=rows, rows_are_order=True,
                   sample_weight=sample_weight).loss  # fmt: skip
    # Weights w, not w·x/total: a single block's average is then its own
    # parameters, bit for bit (1.0 · x is exact).
    weight = rows.shape[0] / total
    return (weight * state.P, weight * state.optimizer_state[slots], state.n_updates - t0,
            weight * loss)  # fmt: skip


def add_terms(a, b):
    """Two blocks' terms of a round's average added: sums, and the most updates either made."""
    return a[0] + b[0], a[1] + b[1], max(a[2], b[2]), a[3] + b[3]


def block_gradient(block, index, P, cfg, backend):
    """The block's loss sum and gradient sum at ``P`` (``batch_gradient`` over all its rows)."""
    X, y, sample_weight = block[0], block[1], block[2]
    n = X.shape[0]
    loss_sum, G = get_backend(backend).batch_gradient(
        X, y, np.arange(n, dtype=row_order_dtype(n)), P, cfg, sample_weight
    )
    # batch_gradient returns the mean gradient: the sum is what adds up.
    return float(loss_sum), G * n


def add_sums(a, b):
    return a[0] + b[0], a[1] + b[1]


# --- the strategies -------------------------------------------------------------------


class AverageEpoch:
    """One epoch of ``"average"``: ``rounds`` rounds of block training, each averaged.

    The update counter: after each round the driver's ``n_updates`` advances
    by the largest number of updates any block made in it (every block's, for
    equal blocks), so ``invscaling``, ``optimal`` and Adam's bias correction
    see the clock of the longest sequence of updates. The epoch's loss is the
    row-weighted mean of the blocks' losses.
    """

    def __init__(self, trainer, blocks, executor, settings, rounds):
        self.trainer, self.blocks, self.executor = trainer, blocks, executor
        self.shuffle, self.rounds = settings["shuffle"], rounds

    def __call__(self):
        trainer, blocks, executor = self.trainer, self.blocks, self.executor
        state = trainer.train_state
        started = time.perf_counter()
        lr = trainer.learning_rate(state.n_epochs)
        round_losses = []
        for round_ in range(self.rounds):
            total = sum(stop - start for start, stop in
                        (round_rows(rows, round_, self.rounds) for rows in blocks.rows))
            # The blocks' terms are added where they lie, TREE_WIDTH at a time
            # in block order (tree_sum): a fixed order of additions wherever
            # the blocks are, and about one term per worker crossing the network.
            shared = executor.broadcast(state, state.P.nbytes + state.optimizer_state.nbytes)
            terms = executor.map(
                train_block, blocks.handles, shared, trainer.cfg, trainer.run, trainer.backend,
                self.shuffle, lr, round_, self.rounds, total,
            )  # fmt: skip
            P, moments, updates, loss = tree_sum(executor, terms, add_terms)
            state.P[...] = P
            state.optimizer_state[list(slots_in_use(trainer.cfg))] = moments
            state.n_updates += updates
            round_losses.append((loss, total))
        # Weighted as the blocks are, so that one round's loss is the epoch's exactly.
        epoch_rows = sum(total for _, total in round_losses)
        loss = sum(total / epoch_rows * loss for loss, total in round_losses)
        end_epoch(state, loss, lr, 0)  # the rounds have counted the updates
        return Epoch(loss, time.perf_counter() - started)


class GradientEpoch:
    """One epoch of ``"gradient"``: one full-batch step, the gradient summed over the blocks."""

    def __init__(self, trainer, blocks, executor):
        self.trainer, self.blocks, self.executor = trainer, blocks, executor

    def __call__(self):
        trainer, blocks, executor = self.trainer, self.blocks, self.executor
        state = trainer.train_state
        started = time.perf_counter()
        shared = executor.broadcast(state.P, state.P.nbytes)
        sums = executor.map(block_gradient, blocks.handles, shared, trainer.cfg, trainer.backend)
        loss_sum, G_sum = tree_sum(executor, sums, add_sums)
        n = blocks.n_samples
        loss = loss_sum / n
        lr = trainer.learning_rate(state.n_epochs) * state.lr_factor
        finite = trainer.kernels.apply_update(state.P, G_sum / n, state.optimizer_state,
                                              trainer.cfg, lr, state.n_updates + 1)  # fmt: skip
        # A parameter or moment made infinite by the step diverges as a loss does.
        end_epoch(state, loss if finite else np.nan, lr, 1)
        return Epoch(loss, time.perf_counter() - started)


def check_strategy(settings):
    """Refuse what a strategy cannot do, naming the setting and the value."""
    if settings["strategy"] != GRADIENT:
        return
    batch_size = settings["batch_size"]
    if batch_size is not None:
        raise ValueError(
            f"strategy='gradient' is full-batch gradient descent: it needs batch_size=None; "
            f"got batch_size={shown(batch_size)}. For mini-batches on a cluster use "
            "strategy='average'."
        )
    if settings["rounds_per_epoch"] != 1:
        raise ValueError(
            f"rounds_per_epoch applies to strategy='average' only; got "
            f"rounds_per_epoch={shown(settings['rounds_per_epoch'])} with strategy='gradient'."
        )


def prepare(X, y, sample_weight, settings):
    """Checked settings' records, checked blocks and a fresh Trainer: all before any training."""
    check_strategy(settings)
    executor = executor_of(settings["client"])
    blocks = checked_blocks(X, y, sample_weight, settings, executor)
    if settings["rounds_per_epoch"] > max(blocks.rows):
        raise ValueError(
            f"rounds_per_epoch={settings['rounds_per_epoch']} is more than the rows of the "
            f"largest block ({max(blocks.rows)}): some rounds would train on no rows. Use at "
            "most that many rounds, or larger blocks."
        )
    cfg, run = kernel_records(settings, n_samples=blocks.n_samples)
    trainer = Trainer.from_settings(settings, cfg, run, blocks.n_features, blocks.n_outputs,
                                    blocks.dtype, multi_output=blocks.multi_output)  # fmt: skip
    if settings["strategy"] == GRADIENT:
        epoch = GradientEpoch(trainer, blocks, executor)
    else:
        epoch = AverageEpoch(trainer, blocks, executor, settings, settings["rounds_per_epoch"])
    return trainer, epoch


