"""Every setting of ``fastgd.fit`` and of the estimators, each written once.

:data:`SETTINGS` has one row per setting: its name, default, check, numpydoc
entry (type and description), the part of fastgd that consumes it, and the
entry points that take it. From the table come

- the validation: :func:`check_settings`, one loop over the rows (behind
  ``_validation.check_fit_settings``, ``fastgd.fit`` and the estimators);
- the records the backends receive: :func:`kernel_records` builds
  ``KernelConfig`` (what is computed) and ``ExecutionConfig`` (how it runs)
  from the rows' ``consumer`` column;
- the Parameters sections of ``fastgd.fit``'s and the estimators'
  docstrings (:func:`parameters_doc`, :func:`document_settings`);
- the README's settings table (:func:`readme_table`; ``python -c "from
  fastgd._settings import write_readme; write_readme('README.md')"``
  rewrites it).

``fastgd.fit`` keeps its explicit keyword signature and the estimators their
explicit ``__init__`` (scikit-learn reads it); ``tests/test_settings_table.py``
fails when a signature, a docstring, the README or a record disagrees with
the table.

Adding a setting is one row here plus the code that uses it. A new kernel
hyperparameter (``consumer=KERNEL``) also gets its field in
``_config.KernelConfig`` and in the Cython kernels' C struct of the same name
(the backends' record: its fields are fixed, so they are written out there;
tests/test_settings_table.py holds the record to the table, and the
extension's import check the struct to the record).
"""

import functools
import re
import textwrap
import types
from typing import Any, Callable, NamedTuple

from ._config import (
    CLASSIFICATION_LOSSES,
    L1_METHODS,
    LOSSES,
    OPTIMIZERS,
    ORDER_BATCHES,
    ORDER_SEQUENTIAL,
    ORDER_SHUFFLED,
    PARALLEL_MODES,
    PENALTIES,
    REGRESSION_LOSSES,
    SCHEDULES,
    SPARSE_UPDATES,
    ExecutionConfig,
    KernelConfig,
    penalty_split,
)
from ._schedule import update_exponent, update_offset
from ._validation import (
    SHUFFLE_MODES,
    check_average,
    check_bool,
    check_callback,
    check_class_weight,
    check_float,
    check_int,
    check_n_threads,
    check_option,
    check_random_state,
    check_shuffle,
    check_verbose,
    usable_cpu_count,
)
from .backends import BACKEND_MODULES

# Who consumes a setting.
KERNEL = "kernel"  # the kernel's arithmetic: loss, optimizer, penalty, hyperparameters
SCHEDULE = "schedule"  # the learning-rate schedule (fastgd._schedule)
LOOP = "loop"  # the engine's epoch loop: epochs, stopping, row order, callbacks, data
EXECUTION = "execution"  # how an epoch runs: backend, threads, sparse update mode
CONSUMERS = (KERNEL, SCHEDULE, LOOP, EXECUTION)

# The entry points, by the name a user calls them by.
FIT = "fit"
REGRESSOR = "MiniBatchRegressor"
CLASSIFIER = "MiniBatchClassifier"
ONE_CLASS = "MiniBatchOneClassSVM"
DASK_FIT = "fastgd.dask.fit"
ENTRY_POINTS = (FIT, REGRESSOR, CLASSIFIER, ONE_CLASS, DASK_FIT)
# An entry point that takes every setting of another, plus rows of its own:
# a driver over fit's engine (the Dask one) never lists fit's rows again.
EXTENDS = {DASK_FIT: FIT}
ESTIMATORS = (REGRESSOR, CLASSIFIER, ONE_CLASS)
# The estimators of a y: the one-class SVM has none, and its loss and
# penalty are its ``nu`` (see :func:`engine_settings`).
SUPERVISED = (REGRESSOR, CLASSIFIER)
WITH_LOSS = (FIT,) + SUPERVISED


# The Dask driver's strategies (``fastgd.dask.fit``).
DASK_STRATEGIES = ("average", "gradient")


# --- checks: small declarative specs over fastgd._validation's functions ----------------
# Each is called as ``check(name, value)`` and returns the validated value
# (a Python int, float or bool, never the user's NumPy scalar); its ``type``
# is the numpydoc type of the setting.


class Option(NamedTuple):
    """One of ``choices`` (``check_option``: a typo gets a suggestion)."""

    choices: tuple

    def __call__(self, name, value):
        return check_option(name, value, self.choices)

    @property
    def type(self):
        return "{" + ", ".join(map(repr, self.choices)) + "}"


class Int(NamedTuple):
    """An integer ``>= minimum`` (``check_int``), or None where ``or_none``."""

    minimum: int
    or_none: bool = False

    def __call__(self, name, value):
        if value is None and self.or_none:
            return None
        return check_int(name, value, self.minimum)

    @property
    def type(self):
        return "int or None" if self.or_none else "int"


class Float(NamedTuple):
    """A finite float in an interval (``check_float``), or None where ``or_none``."""

    low: float = None
    high: float = None
    low_open: bool = False
    high_open: bool = False
    or_none: bool = False

    def __call__(self, name, value):
        if value is None and self.or_none:
            return None
        return check_float(name, value, low=self.low, high=self.high,
                           low_open=self.low_open, high_open=self.high_open)  # fmt: skip

    @property
    def type(self):
        return "float or None" if self.or_none else "float"


class Bool(NamedTuple):
    """True or False, Python's or NumPy's (``check_bool``)."""

    def __call__(self, name, value):
        return check_bool(name, value)

    @property
    def type(self):
        return "bool"


class Checked(NamedTuple):
    """A check of its own that names the argument itself, or None: checked elsewhere."""

    check: Callable
    type: str

    def __call__(self, name, value):
        return value if self.check is None else self.check(value)


UNIT_OPEN_ABOVE = Float(low=0.0, high=1.0, high_open=True)  # [0, 1): moment decays
UNIT_OPEN_BELOW = Float(low=0.0, high=1.0, low_open=True)  # (0, 1]: per-epoch factors


class Setting(NamedTuple):
    """One row of the settings table.

    ``check(name, value)`` returns the validated value. ``type`` and ``doc``
    are the numpydoc entry (type without the default, which is rendered from
    ``default``; ``type=None`` takes the check's). ``encode``, for a kernel
    or execution row that is a field of its record under its own name, turns
    the validated value into the record's number. ``readme`` is the row's
    cell in the README's table (None: not listed there). ``per_entry`` maps
    an entry point to the fields that differ there (the estimators' loss).
    """

    name: str
    default: Any
    check: Callable
    consumer: str
    entries: tuple = ENTRY_POINTS
    doc: str = ""
    type: str = None
    encode: Callable = None
    readme: str = None
    per_entry: dict = {}

    def type_line(self):
        """The numpydoc line after ``name :``: the type and the default."""
        return f"{self.type or self.check.type}, default={_shown(self.default)}"


def _shown(default):
    """The default as a docstring shows it: ``'sgd'``, ``None``, ``1e-8``."""
    return re.sub(r"e-0(\d)", r"e-\1", repr(default))


def _doc(text):
    return textwrap.dedent(text).strip("\n")


# The table. Its order is the order of every signature and docstring (each
# entry point keeps the rows it takes, in this order).
# MiniBatchClassifier's losses: the classification losses but multinomial,
# which is what its log_loss becomes for more than two classes.
CLASSIFIER_LOSSES = tuple(name for name in CLASSIFICATION_LOSSES if name != "multinomial")

SETTINGS = (
    Setting(
        "nu", 0.5, Float(low=0.0, high=1.0, low_open=True), KERNEL, entries=(ONE_CLASS,),
        doc=_doc("""
            The one-class SVM's ν, in (0, 1]: an upper bound on the fraction of
            training rows outside the boundary and a lower bound on the fraction
            of support vectors. The objective is scikit-learn's
            ``SGDOneClassSVM``'s, ``ν/2·‖w‖² + ν·b + mean max(0, 1 − (w·x + b))``
            with ``offset_ = 1 − b``: the hinge loss on every row, the L2
            penalty ``alpha = ν`` and a constant ``ν`` in the intercept's gradient.
        """),
    ),  # fmt: skip
    Setting(
        "loss", "squared_error", Option(LOSSES), KERNEL, encode=LOSSES.index, entries=WITH_LOSS,
        doc=_doc("""
            ``squared_error`` is ``½(p − y)²``; ``huber`` and
            ``epsilon_insensitive`` use ``epsilon``; ``log_loss`` is binary
            logistic regression, ``multinomial`` softmax cross-entropy and
            ``hinge`` the linear SVM loss ``max(0, 1 − s·p)`` with ``s = 2y − 1``;
            ``modified_huber`` (``(1 − s·p)²`` for ``s·p ≥ −1``, ``−4s·p``
            below, 0 from 1 on), ``squared_hinge`` (``max(0, 1 − s·p)²``) and
            ``perceptron`` (``max(0, −s·p)``) are scikit-learn's, y in {0, 1};
            ``squared_epsilon_insensitive`` is ``max(0, |y − p| − epsilon)²``.
        """),
        readme="`squared_error`, `huber`, `epsilon_insensitive`, "
        "`squared_epsilon_insensitive`, `log_loss` (y in {0, 1}), "
        "`multinomial` (softmax, y in 0..K-1), `hinge`, `modified_huber`, "
        "`squared_hinge`, `perceptron` (y in {0, 1})",
        per_entry={
            REGRESSOR: dict(
                check=Option(REGRESSION_LOSSES),
                doc=_doc("""
                    ``squared_error`` is ``½(p − y)²``; ``huber``,
                    ``epsilon_insensitive`` and ``squared_epsilon_insensitive``
                    (``max(0, |y − p| − epsilon)²``) use ``epsilon``.
                """),
            ),
            CLASSIFIER: dict(
                default="log_loss",
                check=Option(CLASSIFIER_LOSSES),
                doc=_doc("""
                    ``log_loss``: logistic regression, binary for two classes and
                    multinomial (softmax) for more; ``hinge``: the linear SVM
                    loss; ``modified_huber``, ``squared_hinge``, ``perceptron``:
                    scikit-learn's. All but ``log_loss`` are one-vs-rest for more
                    than two classes; ``predict_proba`` needs ``log_loss`` or
                    ``modified_huber``.
                """),
            ),
        },
    ),  # fmt: skip
    Setting(
        "optimizer", "sgd", Option(OPTIMIZERS), KERNEL, encode=OPTIMIZERS.index,
        readme="`sgd`, `momentum`, `nesterov`, `adagrad`, `rmsprop`, `adam`, `adamw` "
        "(`momentum`, `beta1`, `beta2`, `eps`, `rho`, `weight_decay`)",
    ),  # fmt: skip
    Setting(
        "lr", 0.01, Float(low=0.0, low_open=True), SCHEDULE,
        doc="Base learning rate (> 0).",
    ),  # fmt: skip
    Setting(
        "schedule", "constant", Option(SCHEDULES), SCHEDULE,
        doc=_doc("""
            ``invscaling``: ``lr / t**power_t`` at update t (1-based);
            ``exponential``: ``lr · decay**epoch``; ``step``:
            ``lr · gamma**(epoch // step_size)`` (epochs counted from 0);
            ``adaptive`` (scikit-learn's): ``lr`` while the ``tol`` rule sees
            improvement, divided by 5 each time it would stop training, which
            it does once the rate is at or below 1e-6 (needs ``tol``);
            ``optimal`` (scikit-learn's): ``1 / (alpha · (t0 + t − 1))`` at
            update t, with Bottou's heuristic ``t0`` from ``alpha`` and the
            loss; ``lr`` is unused and ``alpha`` must be > 0 (it sets the rate
            even with ``penalty=None``).
        """),
        per_entry={ONE_CLASS: dict(doc=_doc("""
            ``invscaling``: ``lr / t**power_t`` at update t (1-based);
            ``exponential``: ``lr · decay**epoch``; ``step``:
            ``lr · gamma**(epoch // step_size)`` (epochs counted from 0);
            ``adaptive``: ``lr`` while the ``tol`` rule sees improvement, divided
            by 5 each time it would stop training, which it does once the rate is
            at or below 1e-6 (needs ``tol``); ``optimal`` (scikit-learn's
            default for ``SGDOneClassSVM``): ``1 / (nu · (t0 + t − 1))`` at
            update t, with Bottou's heuristic ``t0``; ``lr`` is unused.
        """))},
        readme="`constant`, `invscaling` (`lr / t**power_t` per update), `exponential` "
        "(`lr · decay**epoch`), `step` (`lr · gamma**(epoch // step_size)`), `adaptive` "
        "(`lr / 5` at each plateau of the `tol` rule, until below 1e-6), `optimal` "
        "(scikit-learn's `1 / (alpha · (t0 + t − 1))` per update; `lr` unused, `alpha` > 0)",
    ),  # fmt: skip
    Setting(
        "batch_size", 32, Int(1, or_none=True), KERNEL,
        doc=_doc("""
            Rows per update: 1 is SGD; None, or anything >= n_samples, is
            full-batch GD.
        """),
        readme="`1` is SGD, `None` (or >= n) is full-batch GD; a last partial batch is "
        "used unless `drop_last=True`",
    ),  # fmt: skip
    Setting(
        "epochs", 10, Int(1), LOOP,
        doc="Most passes over the data in one call to ``fit``.",
        # scikit-learn's max_iter and tol: the estimators stop when the
        # loss stops improving, and warn when they reach the cap first.
        per_entry=dict.fromkeys(ESTIMATORS, dict(default=1000, doc=_doc("""
            Most passes over the data in one call to ``fit`` (scikit-learn's
            ``max_iter``); reaching it before the ``tol`` rule stops training
            warns with a ``ConvergenceWarning``.
        """))),
    ),  # fmt: skip
    Setting(
        "penalty", None, Option(PENALTIES), KERNEL, entries=WITH_LOSS,
        doc=_doc("""
            R(w) = ½‖w‖² (l2), ‖w‖₁ (l1) or
            ``l1_ratio·‖w‖₁ + (1 − l1_ratio)·½‖w‖²`` (elasticnet). The L2 part is
            added to the gradient, except with ``optimizer='sgd'``, where it is
            scikit-learn's shrink ``w *= max(0, 1 − lr_t · alpha · (1 − l1_ratio))``
            before the step (the same step while that product is below 1, and
            no divergence from L2 alone beyond); the L1 part is a proximal soft-threshold
            ``lr_t · alpha · l1_ratio`` after each update, so weights reach
            exactly zero (or scikit-learn's cumulative penalty, see ``l1_method``).
        """),
        readme="`None`, `l2`, `l1`, `elasticnet`: scikit-learn's convention, mean loss + "
        "`alpha · R(w)`; L1 is a proximal step (or scikit-learn's cumulative penalty: "
        "`l1_method`), so weights reach exactly 0; the "
        "intercept is not penalised",
    ),  # fmt: skip
    Setting(
        "alpha", 0.0001, Float(low=0.0), KERNEL, entries=WITH_LOSS,
        doc="Penalty strength (>= 0); also the scale of ``schedule='optimal'``'s rate (> 0).",
    ),  # fmt: skip
    Setting(
        "l1_ratio", 0.15, Float(low=0.0, high=1.0), KERNEL, entries=WITH_LOSS,
        doc="Elastic-net mixing, in [0, 1].",
    ),  # fmt: skip
    Setting(
        "l1_method", "proximal", Option(L1_METHODS), KERNEL, entries=WITH_LOSS,
        doc=_doc("""
            How the L1 part of ``penalty`` (l1, elasticnet) is applied.
            ``'proximal'``: the soft-threshold ``lr_t · alpha · l1_ratio`` of
            each update (the proximal-gradient step of the objective).
            ``'cumulative'``: scikit-learn's cumulative penalty (Tsuruoka et al.,
            2009): each weight is clipped towards 0 by the total penalty
            ``u = Σ lr_t · alpha · l1_ratio`` so far minus what it has already
            received, which drives irrelevant weights to exact zeros under
            noisy per-row gradients. On a dense X every weight is penalised at
            each update; on a sparse X with ``sparse_update='lazy'`` only the
            columns with a stored entry in the batch are (scikit-learn's CSR
            rule), with ``'dense'`` every column.
        """),
        readme="`proximal` (default: the soft-threshold of each update, the "
        "proximal-gradient step of the objective), `cumulative` (scikit-learn's "
        "cumulative L1 penalty of Tsuruoka et al., 2009: exact zeros under noisy "
        "per-row gradients)",
    ),  # fmt: skip
    Setting("fit_intercept", True, Bool(), KERNEL, encode=int),
    Setting(
        "shuffle", True, Checked(check_shuffle, Option(SHUFFLE_MODES).type), LOOP,
        doc=_doc("""
            True visits the rows in a fresh random order every epoch; False keeps
            the data's order; ``'batches'`` cuts the data, in its own order, into
            contiguous batches and visits those in a fresh random order every
            epoch (a last, partial batch stays last). 'batches' reads memory
            sequentially, so it is the fastest random mode; it assumes rows that
            are already in random order (shuffle X once beforehand if not).
        """),
        readme="`True` (a fresh row permutation every epoch, default), `False` (the data's "
        "order), `'batches'` (the data's contiguous batches, visited in a fresh random "
        "order every epoch: sequential reads, for data already in random order)",
    ),  # fmt: skip
    Setting(
        "drop_last", False, Bool(), KERNEL, encode=int,
        doc="Skip the last batch of an epoch when it is smaller than ``batch_size``.",
    ),  # fmt: skip
    Setting(
        "tol", None, Float(low=0.0, or_none=True), LOOP,
        doc=_doc("""
            With a value, stop once the epoch loss has not improved on the best
            by at least ``tol`` for ``n_iter_no_change`` consecutive epochs.
        """),
        per_entry={
            **dict.fromkeys(SUPERVISED, dict(default=1e-3, doc=_doc("""
                Without ``early_stopping``: stop once the training loss has not
                improved on its best by at least ``tol`` for ``n_iter_no_change``
                epochs in a row (None: always run ``epochs``). With
                ``early_stopping``: the same rule on the validation score (None
                counts as 0: stop when the score has not improved at all).
            """))),
            ONE_CLASS: dict(default=1e-3, doc=_doc("""
                Stop once the training loss (the mean hinge loss, without the
                ``ν`` terms) has not improved on its best by at least ``tol`` for
                ``n_iter_no_change`` epochs in a row (None: always run ``epochs``).
            """)),
        },
    ),  # fmt: skip
    Setting("n_iter_no_change", 5, Int(1), LOOP),
    Setting(
        "early_stopping", False, Bool(), LOOP, entries=SUPERVISED,
        doc=_doc("""
            Hold out ``validation_fraction`` of the training rows (stratified by
            class for the classifier, drawn with ``random_state``), score the
            model on them after every epoch and stop by the ``tol`` rule above.
            The parameters of the best-scoring epoch are kept, as in
            scikit-learn's ``MLPClassifier``. The held-out rows are not copied
            for training; their copy for scoring is ``validation_fraction`` of X.
        """),
    ),  # fmt: skip
    Setting(
        "validation_fraction", 0.1,
        Float(low=0.0, high=1.0, low_open=True, high_open=True), LOOP, entries=SUPERVISED,
        doc="In (0, 1); used only with ``early_stopping``.",
    ),  # fmt: skip
    Setting(
        "warm_start", False, Bool(), LOOP, entries=ESTIMATORS,
        doc=_doc("""
            ``fit`` continues from the previous fit's parameters, optimizer state
            and counters instead of starting from zero. Changed hyperparameters
            (``lr``, ``alpha``, ...) apply from the next epoch; the loss, the
            classes and the number of features cannot change.
        """),
    ),  # fmt: skip
    Setting(
        "class_weight", None,
        Checked(check_class_weight, "dict, 'balanced' or None"), LOOP, entries=(CLASSIFIER,),
        doc=_doc("""
            Weights of the classes, multiplying each row's ``sample_weight``
            (scikit-learn's rule): a dict of label to weight (labels not named
            weigh 1), or ``'balanced'``, ``n_samples / (n_classes · count(k))``
            over ``fit``'s y (``partial_fit`` refuses it: pass a dict). Binary
            and multinomial models weigh a row of class k by its weight;
            one-vs-rest problem k weighs class k's rows by it and the others 1.
        """),
    ),  # fmt: skip
    Setting(
        "random_state", None,
        Checked(check_random_state, "int, numpy.random.Generator or None"), LOOP,
        doc=_doc("""
            Seeds the row order. The same seed gives bit-identical results; None
            draws fresh entropy, so two runs differ (when shuffling).
        """),
        per_entry=dict.fromkeys(SUPERVISED, dict(doc=_doc("""
            Seeds the row order (and the early-stopping hold-out). The same seed
            gives the same numbers as :func:`fastgd.fit`.
        """))),
    ),  # fmt: skip
    Setting(
        "backend", "numba", Option(tuple(BACKEND_MODULES)), EXECUTION,
        doc="One of :func:`fastgd.available_backends`.",
        readme="`numba` (default), `cython` (compiled ahead of time by `pip install`: no "
        "JIT), `numpy` (the reference); `fastgd.available_backends()` lists what is "
        "usable",
    ),  # fmt: skip
    Setting(
        "verbose", 0, Checked(check_verbose, "int or bool"), LOOP, entries=ESTIMATORS,
        doc=_doc("""
            True (or 1 and more) shows a progress bar over ``fit``'s epochs on
            stderr (tqdm, with the running loss, the validation score that
            ``early_stopping`` watches and rows/s; a plain line per epoch where
            tqdm is not installed), then a line saying why training stopped.
        """),
    ),  # fmt: skip
    Setting(
        "callback", None, Checked(check_callback, "callable or None"), LOOP,
        doc=_doc("""
            Called after every epoch as ``callback(epoch, loss, coef, intercept)``
            (epoch counted from 1; copies of the current parameters). Returning
            True stops training; False or None goes on; anything else (an
            array, say) is a TypeError, the completed epochs kept.
        """),
        per_entry={
            **dict.fromkeys(SUPERVISED, dict(doc=_doc("""
                Called after every epoch of ``fit`` and ``partial_fit`` as
                ``callback(epoch, loss, coef, intercept)``: the epoch's number
                (counting every epoch the model has run), its mean training loss
                and copies of ``coef_`` and ``intercept_`` as they stand.
                Returning True stops ``fit``; False or None goes on; anything
                else (an array, say) is a TypeError, the completed epochs kept.
            """))),
            ONE_CLASS: dict(doc=_doc("""
                Called after every epoch of ``fit`` and ``partial_fit`` as
                ``callback(epoch, loss, coef, offset)``: the epoch's number
                (counting every epoch the model has run), its mean training loss
                and copies of ``coef_`` and ``offset_`` as they stand. Returning
                True stops ``fit``; False or None goes on; anything else (an
                array, say) is a TypeError, the completed epochs kept.
            """)),
        },
    ),  # fmt: skip
    Setting(
        "allow_copy", True, Bool(), LOOP,
        doc=_doc("""
            False raises a ValueError, saying why, where X or y would have to be
            copied or converted (see X above; y must then be a C-contiguous array
            of X's dtype) instead of doing so: a guard against a hidden n × d
            copy of a large X.
        """),
        per_entry=dict.fromkeys(ESTIMATORS, dict(doc=_doc("""
            False raises a ValueError, saying why, where X would have to be
            copied (not a C-contiguous float32/float64 array, or not of the
            model's dtype when continuing) instead of copying it. y (n values) is
            always encoded for the engine.
        """))),
    ),  # fmt: skip
    Setting(
        # Checked with y, by check_y, which knows the loss and the labels.
        "n_classes", None, Checked(None, "int or None"), LOOP, entries=(FIT,),
        doc=_doc("""
            Number of classes of a classification loss: for ``multinomial``
            (default ``max(y) + 1``), or 2 for the others (``log_loss``, ``hinge``,
            ``modified_huber``, ``squared_hinge``, ``perceptron``). Given,
            y need not show every class (a chunk of a larger problem). K > 2
            with ``hinge``, ``modified_huber``, ``squared_hinge`` or
            ``perceptron`` is one-vs-rest over codes 0..K-1: K binary outputs
            trained in one pass over X.
        """),
    ),  # fmt: skip
    Setting(
        "epsilon", 0.1, Float(low=0.0), KERNEL, encode=float, entries=WITH_LOSS,
        doc=_doc("""
            Width of the quadratic zone of ``huber`` and the insensitive zone of
            ``epsilon_insensitive``.
        """),
    ),  # fmt: skip
    Setting(
        "power_t", 0.25, Float(low=0.0), SCHEDULE,
        doc="Exponent of ``invscaling``.",
    ),  # fmt: skip
    Setting(
        "decay", 0.9, UNIT_OPEN_BELOW, SCHEDULE,
        doc="Per-epoch factor of ``exponential``, in (0, 1].",
    ),  # fmt: skip
    Setting(
        "step_size", 10, Int(1), SCHEDULE,
        doc="Epochs between the drops of ``step``.",
    ),  # fmt: skip
    Setting(
        "gamma", 0.1, UNIT_OPEN_BELOW, SCHEDULE,
        doc="Factor of each drop of ``step``, in (0, 1].",
    ),  # fmt: skip
    Setting(
        "momentum", 0.9, UNIT_OPEN_ABOVE, KERNEL, encode=float,
        doc=_doc("""
            ``momentum`` and ``nesterov``: ``v = momentum·v + g``; the step is
            ``lr·v`` (``lr·(g + momentum·v)`` for nesterov), as in PyTorch.
        """),
    ),  # fmt: skip
    Setting(
        "beta1", 0.9, UNIT_OPEN_ABOVE, KERNEL, encode=float,
        doc="Adam's decay of the gradient's running mean (first moment), in [0, 1).",
    ),  # fmt: skip
    Setting(
        "beta2", 0.999, UNIT_OPEN_ABOVE, KERNEL, encode=float,
        doc=_doc("""
            Adam's decay of the squared gradient's running mean (second moment),
            in [0, 1).
        """),
    ),  # fmt: skip
    Setting(
        "eps", 1e-8, Float(low=0.0, low_open=True), KERNEL, encode=float,
        doc="Added to the root of the second moment (adagrad, rmsprop, adam).",
    ),  # fmt: skip
    Setting(
        "rho", 0.9, UNIT_OPEN_ABOVE, KERNEL, encode=float,
        doc="RMSprop's decay of the squared-gradient average, in [0, 1).",
    ),  # fmt: skip
    Setting(
        "weight_decay", 0.01, Float(low=0.0), KERNEL, encode=float,
        doc="AdamW's decoupled decay: ``w *= 1 − lr_t·weight_decay`` before each step.",
    ),  # fmt: skip
    Setting(
        "average", False, Checked(check_average, "bool or int"), KERNEL,
        doc=_doc("""
            Averaged SGD (Polyak–Ruppert), as scikit-learn's ``average``: True
            averages the parameters of every update from the first; an int n
            starts once n rows have been seen, i.e. from update
            ``ceil(n / batch_size)`` on (updates are counted, not rows: at
            ``batch_size=1`` the two agree); False (or 0) is off. Once averaging
            has started, the fitted ``coef``/``intercept`` are the running
            average of the parameters after each update, while training
            (``partial_fit``, ``warm_start``) goes on from the last iterate.
        """),
        readme="`False` (default), `True` or an int n: averaged SGD "
        "(Polyak–Ruppert), the fitted parameters are the average of the iterates "
        "from the update that sees row n on",
    ),  # fmt: skip
    Setting(
        "n_threads", 1, Checked(check_n_threads, "int"), EXECUTION,
        # More threads than CPUs would only take turns: same result, slower.
        encode=lambda n_threads: min(n_threads, usable_cpu_count()),
        doc=_doc("""
            Threads of the compiled backends; -1 uses every CPU this process may
            run on (more than that are not started). With ``parallel='data'``,
            a batch of more than 1024 rows is cut into chunks of 1024 whose
            gradients the threads compute side by side, then add in chunk order:
            the result is the same, bit for bit, for any ``n_threads``, and
            smaller batches run on one thread. The NumPy backend always runs one,
            and so does a sparse X (``n_threads`` and ``parallel`` do not apply).
        """),
        readme="`1` (default), any count, or `-1` for every CPU: a batch of more than "
        "1,024 rows has its gradient shared over the threads, with the same result for "
        "any count (smaller batches run on one thread)",
    ),  # fmt: skip
    Setting(
        "parallel", "data", Option(PARALLEL_MODES), EXECUTION,
        doc=_doc("""
            ``'hogwild'`` (Niu et al., 2011; Numba and Cython backends): each of
            the ``n_threads`` threads runs its own share of the epoch's batches
            and updates the shared parameters without locks. It speeds up small
            batches, which have too little work to share out, but it is **not
            deterministic**: results change from run to run (converging to the
            same solution on well-posed problems). Update counts of
            ``invscaling`` and Adam are counted per thread, times the thread count.
        """),
        readme="`'data'` (default: the deterministic data-parallel gradient above) or "
        "`'hogwild'`: `n_threads` lock-free threads each run a share of the epoch's "
        "batches on the shared parameters (Niu et al., 2011), for small batches; **not "
        "deterministic**",
    ),  # fmt: skip
    Setting(
        "sparse_update", "lazy", Option(SPARSE_UPDATES), EXECUTION,
        encode=SPARSE_UPDATES.index,
        doc=_doc("""
            How a sparse X's batches update the weights; ignored for a dense X.
            ``'dense'`` is the dense update itself (the same numbers as the
            dense copy of X, at O(n_features) per batch). ``'lazy'`` costs
            O(stored entries of the batch) per batch:

            - ``optimizer='sgd'``: exact, the same numbers as ``'dense'`` up to
              rounding, for every penalty and schedule. The L2 shrink of all
              weights is one scale factor (``w = scale · v``); L1 and elastic-net
              are caught up per column when it is next read (the composition of
              the skipped shrink-and-soft-threshold steps, in closed form).
            - the other optimizers: only the columns with a stored entry in the
              batch (an explicitly stored 0 counts) and the intercept are
              stepped, as PyTorch's ``SparseAdam``: the moments of the other
              columns are not decayed, momentum does not move them, and their
              L2 gradient, AdamW decay and L1 soft-threshold wait until the
              column appears in a batch. That is the dense update restricted to
              the batch's columns, not the dense update.

            X may be CSR (used as it is) or any other sparse format (converted
            once to CSR).
        """),
        readme="`lazy` (default), `dense`: how a `scipy.sparse` X updates the weights, see "
        "[Sparse input](#sparse-input)",
    ),  # fmt: skip
    Setting(
        "strategy", "average", Option(DASK_STRATEGIES), EXECUTION, entries=(DASK_FIT,),
        doc=_doc("""
            How the blocks of rows train together. ``'average'``: local SGD with
            model averaging; each round every block runs the compiled epoch over
            its own rows (shuffled within the block) from the broadcast
            parameters and optimizer state, and the driver averages them
            weighted by rows, in block order. Not the update sequence of one
            machine (see the README's "On a cluster"), and it converges worse
            on blocks sorted by label or feature. ``'gradient'``: exact
            full-batch gradient descent (``batch_size=None``): each step every
            block sums its loss and gradient, the sums are tree-reduced in
            block order and the driver makes one update; it equals
            ``fastgd.fit(batch_size=None, shuffle=False)`` to rounding.
        """),
    ),  # fmt: skip
    Setting(
        "rounds_per_epoch", 1, Int(1), EXECUTION, entries=(DASK_FIT,),
        doc=_doc("""
            ``strategy='average'``: averages per epoch. Each block's shuffled
            rows of the epoch are cut into this many consecutive slices, one
            per round, and the models are averaged after each (more frequent
            averaging, closer to one machine's fit, more rounds of scheduler
            overhead). Must be 1 with ``strategy='gradient'``.
        """),
    ),  # fmt: skip
    Setting(
        "client", None, Checked(None, "distributed.Client or None"), EXECUTION,
        entries=(DASK_FIT,),
        doc=_doc("""
            The Dask client to run on; None takes the current one
            (``distributed.get_client()``) if there is one, else Dask's local
            scheduler (threads of this process).
        """),
    ),  # fmt: skip
)

ROWS = {row.name: row for row in SETTINGS}


# Cached: every fit reads it twice, and building it is most of a small
# fit's own Python time. The mapping is read-only.
@functools.lru_cache(maxsize=None)
def table(entry):
    """The rows ``entry`` (one of :data:`ENTRY_POINTS`) takes, by name, as it sees them."""
    base = EXTENDS.get(entry)
    return types.MappingProxyType({
        row.name: row._replace(**row.per_entry.get(base, {}), **row.per_entry.get(entry, {}))
        for row in SETTINGS
        if entry in row.entries or (base is not None and base in row.entries)
    })  # fmt: skip


def setting_names(entry):
    """The names of ``entry``'s settings, in the order of its signature."""
    return tuple(table(entry))


def settings_from(namespace, entry):
    """``entry``'s settings read by name from ``namespace`` (a function's ``locals()``)."""
    return {name: namespace[name] for name in setting_names(entry)}


# --- validation -----------------------------------------------------------------


def check_settings(entry, given):
    """Check the settings ``given`` (a mapping) against ``entry``'s rows.

    Returns every setting of ``entry``, in the table's order: the checked
    value of each one given, the default of each one not given. A name that
    is not a setting of ``entry`` raises a TypeError.
    """
    rows = table(entry)
    for name in given:
        if name not in rows:
            raise TypeError(f"{entry}() got an unexpected keyword argument {name!r}")
    return {
        name: row.check(name, given[name]) if name in given else row.default
        for name, row in rows.items()
    }


# --- records --------------------------------------------------------------------


def row_order(shuffle):
    """The ``ROW_ORDERS`` code of a checked ``shuffle`` mode."""
    if shuffle == "batches":
        return ORDER_BATCHES
    return ORDER_SHUFFLED if shuffle else ORDER_SEQUENTIAL


def _penalty_part(index):
    return lambda s: penalty_split(s["penalty"], s["alpha"], s["l1_ratio"])[index]


# The records' fields that are not a row of their own name (with an
# ``encode``): how each is computed from the checked settings ``s`` (plus
# ``s["n_samples"]``, the rows the batches are cut from). Every other field
# is ``ROWS[field].encode(s[field])``.
DERIVED_FIELDS = {
    "batch_size": lambda s: min(
        s["n_samples"] if s["batch_size"] is None else s["batch_size"], s["n_samples"]
    ),
    # Kernels never look at penalty or l1_ratio: the penalty arrives split.
    "l2": _penalty_part(0),
    "l1": _penalty_part(1),
    "power_t": lambda s: update_exponent(s["schedule"], s["power_t"]),
    "t_offset": lambda s: update_offset(s["schedule"], s["alpha"], s["loss"], s["epsilon"]),
    # The one-class SVM's nu·b term; no other model has one (nor a nu).
    "intercept_drift": lambda s: s["nu"] if "nu" in s else 0.0,
    "hogwild": lambda s: int(s["parallel"] == "hogwild"),
    # "rows seen" become the update that sees row n: ceil(n / batch_size).
    "average_start": lambda s: -(-s["average"] // DERIVED_FIELDS["batch_size"](s)),
    "l1_cumulative": lambda s: int(s["l1_method"] == "cumulative"),
    "row_order": lambda s: row_order(s["shuffle"]),
}

# MiniBatchOneClassSVM's problem in the engine's terms (scikit-learn's
# SGDOneClassSVM): every row is class 1 of the hinge loss, the penalty is L2
# of strength nu, and nu also drifts the intercept (``intercept_drift``).
ONE_CLASS_ENGINE = dict(loss="hinge", penalty="l2", l1_ratio=0.0, early_stopping=False)


def engine_settings(entry, settings):
    """The checked ``settings`` of ``entry`` as the engine reads them: every row the records need.

    The one-class SVM's settings gain the loss and penalty its ``nu`` stands
    for (``alpha = nu``, also the scale of ``schedule='optimal'``) and the
    defaults of the rows it does not take; every other entry's are returned
    as they are.
    """
    if entry != ONE_CLASS:
        return settings
    defaults = {row.name: row.default for row in SETTINGS if row.name not in settings}
    return {**defaults, **settings, **ONE_CLASS_ENGINE, "alpha": settings["nu"]}


# The consumers each record may read: the kernel's arithmetic (with the
# schedule's per-update exponent) and the execution (with the row order).
RECORD_CONSUMERS = {
    KernelConfig: (KERNEL, SCHEDULE),
    ExecutionConfig: (EXECUTION, LOOP),
}


def build_record(record, settings):
    """``record`` (``KernelConfig`` or ``ExecutionConfig``) from checked ``settings``."""
    return record(**{
        field: DERIVED_FIELDS[field](settings) if field in DERIVED_FIELDS
        else ROWS[field].encode(settings[field])
        for field in record._fields
    })  # fmt: skip


def kernel_records(settings, n_samples):
    """``(KernelConfig, ExecutionConfig)`` of the checked ``settings`` for ``n_samples`` rows."""
    settings = {**settings, "n_samples": n_samples}
    return build_record(KernelConfig, settings), build_record(ExecutionConfig, settings)


# --- documentation ----------------------------------------------------------------


def parameters_doc(entry):
    """The numpydoc entries of ``entry``'s settings, as its Parameters section lists them."""
    lines = []
    for row in table(entry).values():
        lines.append(f"    {row.name} : {row.type_line()}")
        lines += [f"        {line}" if line else "" for line in row.doc.splitlines()]
    return "\n".join(lines) + "\n"


SETTINGS_PLACEHOLDER = "{settings}"


def document_settings(entry):
    """Decorator: put ``entry``'s :func:`parameters_doc` in place of the docstring's
    ``{settings}`` line (PyTorch shares its docstring fragments the same way)."""

    def decorate(function):
        if function.__doc__ is not None:  # None under python -OO
            function.__doc__ = function.__doc__.replace(
                f"    {SETTINGS_PLACEHOLDER}\n", parameters_doc(entry)
            )
        return function

    return decorate


README_START = "<!-- settings-table:start -->"
README_END = "<!-- settings-table:end -->"


def readme_table():
    """The README's settings table (Markdown): the rows that have a ``readme`` cell."""
    lines = ["| setting | values |", "| --- | --- |"]
    lines += [f"| `{row.name}` | {row.readme} |" for row in SETTINGS if row.readme]
    return "\n".join(lines) + "\n"


def readme_block(text):
    """The part of ``text`` between the README's settings-table markers."""
    start = text.index(README_START) + len(README_START) + 1
    return text[start : text.index(README_END)]


def write_readme(path):
    """Rewrite the settings table between the markers of the README at ``path``."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    block = readme_block(text)
    start = text.index(README_START) + len(README_START) + 1
    text = text[:start] + readme_table() + text[start + len(block) :]
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
