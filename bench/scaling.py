"""How batch size trades speed against convergence: `python -m bench.scaling` (`make bench`).

For every (backend, batch size) the same model is trained from zero for
``--epochs`` epochs, ``--repeats`` times (same seed, so the same batches and
the same losses; the repeats measure the machine's noise). Reported, as
median [min, max]:

- rows/s, seconds per epoch and updates/s: over every timed epoch of every
  repeat;
- the final training loss, and the wall time and number of epochs to reach a
  target loss (default: 1.01 × the lowest epoch loss any configuration
  reached): over the repeats. Wall time is the sum of the epochs' backend
  calls up to the first epoch whose loss is at or below the target.

Measured in the same run, with the same data:

- the floor: the time a compiled loop needs just to read X once,
  sequentially and in a shuffled row order (int32 indices, as the engine
  uses). Every rows/s is also printed as a fraction of the shuffled floor:
  the share of what the memory allows that training achieves.
- peers, when installed: scikit-learn's SGD estimator (batch size 1) and a
  PyTorch CPU loop (``DataLoader`` over a ``TensorDataset``, ``nn.Linear``,
  manual SGD update) at every batch size, for the same epochs.

Before anything is timed, every backend is checked against the NumPy
reference on a slice of the problem at every batch size
(``_common.check_then_time``, which then times the backends). The reference, and
the peers, are slow per row: each of their runs is capped at
``--cap-seconds``. A capped run is timed on fewer rows and its per-row cost
extrapolated to n; the reference's losses are then the compiled backends'
(equal by the backend contract, checked above). Such rows say "extrapolated".

Writes ``results.json`` (every figure) and ``scaling.png`` into ``--out``.
"""

import argparse
import functools
import json
import math
import os
import sys
import time
import warnings

import numpy as np

import fastgd
from fastgd._config import LOSSES, OPTIMIZERS, REGRESSION_LOSSES
from fastgd._engine import Trainer, row_order_dtype
from fastgd._synthetic import make_problem
from fastgd._validation import (
    check_fit_settings,
    check_float,
    check_int,
    check_option,
    check_X,
    check_y,
)
from fastgd.backends import BACKEND_MODULES, get_backend

from ._common import (
    REFERENCE,
    SETTINGS,
    Case,
    add_flag,
    batch_size_arg,
    bench_parser,
    check_then_time,
    machine_info,
    machine_line,
    memory_floor,
    resolve_batch_sizes,
    time_epoch,
    tolerance,
)

DEFAULTS = dict(n_samples=1_000_000, n_features=64,
                batch_sizes=(1, 8, 32, 128, 512, 4096, "n"), epochs=5, repeats=3,
                cap_seconds=2.0)  # fmt: skip
# --quick: under a minute on 2 cores, Numba's cache warm.
QUICK = dict(n_samples=200_000, n_features=32, batch_sizes=(1, 32, 4096, "n"), epochs=3,
             repeats=2, cap_seconds=0.25)  # fmt: skip
# The check before timing: a few batches (at most this many rows) per batch size.
CHECK_ROWS = 50_000


def stats(values):
    """``{"median", "min", "max"}`` of ``values``; None when there are none."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    return {"median": float(np.median(values)), "min": min(values), "max": max(values)}


# --- the command line ---------------------------------------------------------


def build_parser():
    parser = bench_parser(__doc__, prog="python -m bench.scaling",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add_flag(parser, "n_samples",
             help=f"rows of the synthetic problem (default {DEFAULTS['n_samples']:,}; "
                  f"--quick {QUICK['n_samples']:,}); with --data, use the first N rows")
    add_flag(parser, "n_features",
             help=f"features of the synthetic problem (default {DEFAULTS['n_features']}, "
                  f"--quick {QUICK['n_features']})")
    add_flag(parser, "dtype", help="dtype of X (default float64, or the file's with --data)")
    add("--loss", default="squared_error", help=", ".join(LOSSES))
    add("--optimizer", default="sgd", help=", ".join(OPTIMIZERS))
    add("--lr", type=float, default=0.01, help="learning rate, constant schedule")
    add_flag(parser, "batch_sizes", type=batch_size_arg,
             help="'n' is full-batch GD (default: 1 8 32 128 512 4096 n; "
                  "--quick: 1 32 4096 n)")
    add_flag(parser, "backends",
             help="default: every available backend; the NumPy reference is always added")
    add_flag(parser, "epochs", help=f"default {DEFAULTS['epochs']}, --quick {QUICK['epochs']}")
    add_flag(parser, "repeats",
             help=f"runs per configuration (default {DEFAULTS['repeats']}, "
                  f"--quick {QUICK['repeats']})")
    add("--threads", type=int, default=1,
        help="Numba's thread count and the peers' BLAS/OpenMP/torch threads "
             "(the engine itself runs one thread)")
    add("--data", nargs=2, metavar=("X.npy", "y.npy"), default=None,
        help="your own arrays instead of the synthetic problem")
    add("--target-loss", type=float, default=None,
        help="default: 1.01 x the lowest epoch loss any configuration reached")
    add("--cap-seconds", type=float, default=None,
        help="time cap of one run of the NumPy reference or a peer; a capped run "
             f"is extrapolated (default {DEFAULTS['cap_seconds']}, "
             f"--quick {QUICK['cap_seconds']})")
    add_flag(parser, "no_peers")
    add("--seed", type=int, default=0, help="data and row-order seed")
    add("--quick", action="store_true",
        help="a small problem, fewer batch sizes, epochs and repeats: under a "
             "minute on 2 cores")
    add_flag(parser, "out", "bench/out", help="folder for results.json and scaling.png")
    return parser  # fmt: skip


def resolve(args):
    """Fill the defaults (``--quick`` or not) and check every number given."""
    base = QUICK if args.quick else DEFAULTS
    # With --data the file decides n and d (--n then takes a prefix).
    names = ("batch_sizes", "epochs", "repeats", "cap_seconds")
    for name in names + (("n_samples", "n_features") if args.data is None else ()):
        if getattr(args, name) is None:
            setattr(args, name, base[name])
    if args.n_samples is not None:
        check_int("n_samples", args.n_samples, 1)
    if args.n_features is not None:
        check_int("n_features", args.n_features, 1)
    check_int("epochs", args.epochs, 1)
    check_int("repeats", args.repeats, 1)
    check_float("cap_seconds", args.cap_seconds, low=0.0, low_open=True)
    check_option("loss", args.loss, LOSSES)
    check_option("optimizer", args.optimizer, OPTIMIZERS)
    for name in args.backends or ():
        check_option("backend", name, tuple(BACKEND_MODULES))
    if args.target_loss is not None:
        check_float("target_loss", args.target_loss, low=0.0)
    return args


def load_problem(args):
    """Return ``(X, y, n_outputs, source)``, validated as ``fastgd.fit`` would."""
    dtype = None if args.dtype is None else np.dtype(args.dtype).type
    if args.data is not None:
        X, y = (np.load(path, allow_pickle=False) for path in args.data)
        if args.n_samples is not None:
            X, y = X[: args.n_samples], y[: args.n_samples]
        source = {"kind": "files", "X": args.data[0], "y": args.data[1]}
    else:
        task = {"multinomial": "multiclass"}.get(args.loss, "regression")
        if args.loss in ("log_loss", "hinge"):
            task = "binary"
        X, y = make_problem(args.n_samples, args.n_features, task=task, dtype=dtype or np.float64,
                            random_state=args.seed)  # fmt: skip
        source = {"kind": "synthetic", "task": task, "random_state": args.seed}
    X = check_X(X, dtype=dtype)
    y, n_outputs = check_y(y, X.shape[0], args.loss, X.dtype)
    return X, y, n_outputs, source


def set_threads(threads):
    """Numba's threads, and the BLAS/OpenMP pools the peers use; returns the count."""
    import numba

    threads = check_int("threads", threads, 1, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(threads)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)
    try:  # pools already started by numpy/scipy only listen to threadpoolctl
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass
    return threads


# --- our backends -----------------------------------------------------------------


def check_cases(X, y, order, cfgs, n_outputs, lr, reference_per_row):
    """One check per batch size: ``check(name)`` -> the parameters after one epoch over a slice.

    The slice is a few batches (at most CHECK_ROWS rows) of the row order.
    The reference's run of each check is timed too: its seconds per row go
    into ``reference_per_row[batch_size]``, the estimate that decides whether
    its timed runs must be capped.
    """

    def check(batch_size, cfg, name):
        rows = order[: min(len(order), 4 * batch_size + 1000, CHECK_ROWS)]
        cfg = cfg._replace(batch_size=min(batch_size, len(rows)))
        seconds, P = time_epoch(get_backend(name), X, y, rows, cfg, n_outputs, lr)
        if name == REFERENCE:
            reference_per_row[batch_size] = seconds / len(rows)
        return P

    return {b: functools.partial(check, b, cfg) for b, cfg in cfgs.items()}


def full_run(name, X, y, cfg, n_outputs, args):
    """Train ``args.epochs`` epochs with the engine's Trainer; the per-epoch record."""
    trainer = Trainer(cfg, X.shape[1], n_outputs, X.dtype, loss=args.loss, backend=name,
                      random_state=args.seed, lr=args.lr, schedule="constant")  # fmt: skip
    for _ in range(args.epochs):
        trainer.epoch(X, y)
    result = trainer.result
    return {
        "epoch_seconds": list(result.epoch_seconds),
        "loss_history": list(result.loss_history),
        "updates_per_epoch": result.n_updates // result.n_epochs,
        "timed_rows": X.shape[0],
        "extrapolated": False,
    }


def capped_reference_run(X, y, order, cfg, n_outputs, args, reference_per_row):
    """The NumPy reference within ``args.cap_seconds``: full when it fits, else extrapolated.

    ``reference_per_row[cfg.batch_size]`` is the reference's seconds per row
    measured by its check (see check_cases). A capped run times one epoch
    over a prefix of the row order (whole batches, as many as fit the cap)
    and scales its per-row cost to n rows; its losses are filled in later
    from a compiled backend.
    """
    n = X.shape[0]
    per_row = reference_per_row[cfg.batch_size]
    if per_row * n * args.epochs <= args.cap_seconds:
        return full_run(REFERENCE, X, y, cfg, n_outputs, args)
    batch_size = cfg.batch_size
    rows = max(1, int(args.cap_seconds / per_row))
    if rows >= batch_size:
        rows -= rows % batch_size  # whole batches only
    rows = min(n, rows)
    part_cfg = cfg._replace(batch_size=min(batch_size, rows))
    seconds, _ = time_epoch(get_backend(REFERENCE), X, y, order[:rows], part_cfg,
                            n_outputs, args.lr)  # fmt: skip
    return {
        "epoch_seconds": [seconds / rows * n] * args.epochs,
        "loss_history": None,
        "updates_per_epoch": math.ceil(n / batch_size),
        "timed_rows": rows,
        "extrapolated": True,
    }


def time_to_target(run, target):
    """``(seconds, epochs)`` until the first epoch with loss <= target; None if never."""
    for epoch, loss in enumerate(run["loss_history"] or (), start=1):
        if loss <= target:
            return sum(run["epoch_seconds"][:epoch]), epoch
    return None


def summarise(runs, n, floor, target):
    """Every reported figure of one (backend, batch size) from its repeated runs."""
    epoch_seconds = [s for run in runs for s in run["epoch_seconds"]]
    updates = runs[0]["updates_per_epoch"]
    reached = [time_to_target(run, target) for run in runs]
    reached = [r for r in reached if r is not None]
    rows_per_s = stats(n / s for s in epoch_seconds)
    return {
        "rows_per_s": rows_per_s,
        "seconds_per_epoch": stats(epoch_seconds),
        "updates_per_s": stats(updates / s for s in epoch_seconds),
        "updates_per_epoch": updates,
        "final_loss": stats(run["loss_history"][-1] for run in runs if run["loss_history"]),
        "time_to_target_s": stats(seconds for seconds, _ in reached),
        "epochs_to_target": stats(epochs for _, epochs in reached),
        "floor_fraction": {
            kind: rows_per_s["median"] / floor[kind]["rows_per_s"]
            for kind in ("shuffled", "sequential")
        },
        "extrapolated": any(run["extrapolated"] for run in runs),
        "timed_rows": min(run["timed_rows"] for run in runs),
        "runs": runs,
    }


# --- peers ---------------------------------------------------------------------------


def peer_rows(probe, n, epochs, cap, minimum):
    """Rows a capped peer trains on: all n when the probe's per-row cost allows."""
    if probe * n * epochs <= cap:
        return n
    return int(min(n, max(minimum, cap / (probe * epochs))))


def peer_figures(rates, rows, n, epochs, floor, ours, note):
    """A peer's row of the report from its rows/s over the repeats."""
    rows_per_s = stats(rates)
    return {
        "status": "ok",
        "rows_per_s": rows_per_s,
        "seconds_per_epoch": stats(n / rate for rate in rates),
        "floor_fraction": {
            kind: rows_per_s["median"] / floor[kind]["rows_per_s"]
            for kind in ("shuffled", "sequential")
        },
        "vs_ours": None if ours is None else rows_per_s["median"] / ours,
        "timed_rows": rows,
        "epochs": epochs,
        "extrapolated": rows < n,
        "note": note,
    }


def run_sklearn(X, y, args, n_outputs, floor, ours):
    """scikit-learn's SGD estimator at batch size 1: rows/s = rows × epochs / fit time."""
    try:
        import sklearn
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import SGDClassifier, SGDRegressor
    except ImportError:
        return {"status": "not installed"}
    if args.loss == "multinomial":
        return {"status": "no equivalent (SGDClassifier is one-vs-rest)"}
    estimator = SGDRegressor if args.loss in REGRESSION_LOSSES else SGDClassifier
    n = X.shape[0]

    def fit(rows, epochs):
        model = estimator(loss=args.loss, penalty=None, learning_rate="constant",
                          eta0=args.lr, max_iter=epochs, tol=None, shuffle=True,
                          average=False, epsilon=SETTINGS["epsilon"],
                          random_state=args.seed)  # fmt: skip
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[:rows], y[:rows])
        return time.perf_counter() - started

    probe_rows = min(n, 2_000)
    probe = fit(probe_rows, 1) / probe_rows
    rows = peer_rows(probe, n, args.epochs, args.cap_seconds, probe_rows)
    rates = [rows * args.epochs / fit(rows, args.epochs) for _ in range(args.repeats)]
    note = estimator.__name__
    if args.optimizer != "sgd":
        note += f", plain SGD: it has no {args.optimizer}"
    figures = peer_figures(rates, rows, n, args.epochs, floor, ours, note)
    figures["version"] = sklearn.__version__
    return figures


def torch_loss(loss):
    """The mean batch loss of ``loss`` in PyTorch, as fastgd defines it."""
    import torch
    import torch.nn.functional as F

    eps = SETTINGS["epsilon"]

    def residual(z, y):
        return z[:, 0] - y

    return {
        "squared_error": lambda z, y: 0.5 * (residual(z, y) ** 2).mean(),
        "huber": lambda z, y: torch.where(
            residual(z, y).abs() <= eps, 0.5 * residual(z, y) ** 2,
            eps * residual(z, y).abs() - 0.5 * eps * eps).mean(),
        "epsilon_insensitive": lambda z, y: (residual(z, y).abs() - eps).clamp(min=0).mean(),
        "log_loss": lambda z, y: F.binary_cross_entropy_with_logits(z[:, 0], y),
        "multinomial": lambda z, y: F.cross_entropy(z, y.long()),
        "hinge": lambda z, y: (1.0 - (2.0 * y - 1.0) * z[:, 0]).clamp(min=0).mean(),
        "modified_huber": lambda z, y: modified_huber(torch, (2.0 * y - 1.0) * z[:, 0]).mean(),
        "squared_hinge": lambda z, y: (1.0 - (2.0 * y - 1.0) * z[:, 0]).clamp(min=0).pow(2).mean(),
        "perceptron": lambda z, y: (-(2.0 * y - 1.0) * z[:, 0]).clamp(min=0).mean(),
        "squared_epsilon_insensitive": lambda z, y: (
            (residual(z, y).abs() - eps).clamp(min=0).pow(2).mean()),
    }[loss]  # fmt: skip


def modified_huber(torch, m):
    """scikit-learn's modified Huber loss of the margins ``m`` (a torch tensor)."""
    return torch.where(m >= 1.0, torch.zeros_like(m),
                       torch.where(m >= -1.0, (1.0 - m) ** 2, -4.0 * m))  # fmt: skip


def run_torch(X, y, args, n_outputs, batch_sizes, floor, ours):
    """A PyTorch CPU loop at every batch size: the usual DataLoader and a manual SGD step."""
    try:
        import torch
        from torch.utils.data import DataLoader, TensorDataset
    except ImportError:
        return {batch_size: {"status": "not installed"} for batch_size in batch_sizes}
    torch.set_num_threads(args.threads)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    loss_fn = torch_loss(args.loss)
    n = X.shape[0]

    def train(rows, batch_size, epochs):
        torch.manual_seed(args.seed)
        model = torch.nn.Linear(X.shape[1], n_outputs, dtype=X_t.dtype)
        loader = DataLoader(TensorDataset(X_t[:rows], y_t[:rows]), shuffle=True,
                            batch_size=min(batch_size, rows))  # fmt: skip
        started = time.perf_counter()
        for _ in range(epochs):
            for xb, yb in loader:
                model.zero_grad(set_to_none=True)
                loss_fn(model(xb), yb).backward()
                with torch.no_grad():
                    for p in model.parameters():
                        p -= args.lr * p.grad
        return time.perf_counter() - started

    results = {}
    for batch_size in batch_sizes:
        # At least one whole batch (up to 20,000 rows) and a few hundred rows.
        probe_rows = min(n, max(256, min(batch_size, 20_000)))
        probe = train(probe_rows, batch_size, 1) / probe_rows
        rows = peer_rows(probe, n, args.epochs, args.cap_seconds, min(n, batch_size, 20_000))
        rates = [rows * args.epochs / train(rows, batch_size, args.epochs)
                 for _ in range(args.repeats)]  # fmt: skip
        note = ""
        if rows < batch_size:
            note = f"batch of all {rows:,} timed rows"
        results[batch_size] = peer_figures(rates, rows, n, args.epochs, floor,
                                           ours.get(batch_size), note)  # fmt: skip
        results[batch_size]["version"] = torch.__version__
    return results


# --- output -------------------------------------------------------------------------


def si(value, unit=""):
    """``12.3M``: three significant figures with a k/M/G suffix."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}{unit}"
    return f"{value:.3g}{unit}"


def percent(fraction):
    """A floor fraction: ``63%``, ``6.2%``, ``0.03%``."""
    if fraction >= 0.095:
        return f"{fraction:.0%}"
    return f"{100 * fraction:.2g}%" if fraction < 0.001 else f"{fraction:.1%}"


def spread(figure, fmt):
    """``median [min-max]`` of a stats dict."""
    return f"{fmt(figure['median'])} [{fmt(figure['min'])}-{fmt(figure['max'])}]"


TABLE = "{:>{width}}  {:<8} {:<24} {:>8} {:>9} {:>6} {:>10}  {:<26} {}"


def table(report):
    """The terminal table: per batch size, our backends, then the peers beside them."""
    n = report["problem"]["n"]
    labels = {b: f"{b:,}" if b < n else f"n={b:,}" for b in report["problem"]["batch_sizes"]}
    width = max(5, *(len(label) for label in labels.values()))
    row = functools.partial(TABLE.format, width=width)
    lines = [row("batch", "backend", "rows/s median [min-max]", "s/epoch", "updates/s",
                 "floor", "final loss", "to target: s [min-max], ep", "note")]  # fmt: skip
    lines.append("-" * len(lines[0]))
    for batch_size, label in labels.items():
        for e in (e for e in report["results"] if e["batch_size"] == batch_size):
            if e["time_to_target_s"] is not None:
                to_target = (spread(e["time_to_target_s"], lambda v: f"{v:.3g}")
                             + f", {e['epochs_to_target']['median']:g}")  # fmt: skip
            else:
                to_target = "-" if e["final_loss"] is None else "not reached"
            final = "-" if e["final_loss"] is None else f"{e['final_loss']['median']:.4g}"
            note = ""
            if e["extrapolated"]:
                note = "extrapolated from " + (f"{e['timed_rows']:,} rows" if e["timed_rows"] < n
                                               else "1 epoch")  # fmt: skip
            lines.append(row(
                label, e["backend"], spread(e["rows_per_s"], si),
                f"{e['seconds_per_epoch']['median']:.3g}", si(e["updates_per_s"]["median"]),
                percent(e["floor_fraction"]["shuffled"]), final, to_target, note,
            ).rstrip())  # fmt: skip
        for p in (p for p in report["peers"] if p["batch_size"] == batch_size):
            if p["status"] != "ok":
                lines.append(row(label, p["name"], p["status"], *[""] * 6).rstrip())
                continue
            notes = [] if p["vs_ours"] is None else [f"{p['vs_ours']:.2g}x ours"]
            notes += [p["note"]] if p["note"] else []
            if p["extrapolated"]:
                notes.append(f"extrapolated from {p['timed_rows']:,} rows")
            lines.append(row(
                label, p["name"], spread(p["rows_per_s"], si),
                f"{p['seconds_per_epoch']['median']:.3g}", "",
                percent(p["floor_fraction"]["shuffled"]), "", "", "; ".join(notes),
            ).rstrip())  # fmt: skip
    return "\n".join(lines)


def plot(report, path):
    """scaling.png: rows/s against batch size with the floor; loss against wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (speed, convergence) = plt.subplots(1, 2, figsize=(13, 6.5))
    n = report["problem"]["n"]
    for backend in report["problem"]["backends"]:
        entries = [e for e in report["results"] if e["backend"] == backend]
        sizes = [e["batch_size"] for e in entries]
        median = np.array([e["rows_per_s"]["median"] for e in entries])
        low = median - [e["rows_per_s"]["min"] for e in entries]
        high = np.array([e["rows_per_s"]["max"] for e in entries]) - median
        label = backend + (" (reference)" if backend == REFERENCE else "")
        if any(e["extrapolated"] for e in entries):
            label += ", partly extrapolated"
        speed.errorbar(sizes, median, yerr=[low, high], marker="o", capsize=3, label=label)
    for name, marker in (("torch", "s"), ("sklearn", "*")):
        peers = [p for p in report["peers"] if p["name"] == name and p["status"] == "ok"]
        if peers:
            speed.plot([p["batch_size"] for p in peers],
                       [p["rows_per_s"]["median"] for p in peers], marker=marker,
                       linestyle=":", markersize=9, label=f"{name} (peer)")  # fmt: skip
    floor = report["floor"]
    speed.axhline(floor["shuffled"]["rows_per_s"], color="0.2",
                  label="floor: read X once, shuffled rows")  # fmt: skip
    speed.axhline(floor["sequential"]["rows_per_s"], color="0.2", linestyle="--",
                  label="floor: read X once, sequentially")  # fmt: skip
    sizes = report["problem"]["batch_sizes"]
    speed.set(xscale="log", yscale="log", xlabel="batch size (rows per update)",
              ylabel="rows / s per epoch (median; bars: min-max)",
              title=f"Rows/s per epoch against batch size\n"
                    f"n={n:,} d={report['problem']['d']} {report['problem']['dtype']}")  # fmt: skip
    speed.set_xticks(sizes, [f"{b:,}" if b < n else "n" for b in sizes], fontsize=8)
    speed.minorticks_off()
    speed.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.12), ncol=2)
    speed.grid(True, alpha=0.3)

    shown = next((b for b in report["problem"]["backends"] if b != REFERENCE), REFERENCE)
    for entry in report["results"]:
        if entry["backend"] != shown or entry["extrapolated"]:
            continue
        runs = sorted(entry["runs"], key=lambda run: sum(run["epoch_seconds"]))
        run = runs[len(runs) // 2]  # the median run by total time
        label = f"batch {entry['batch_size']:,}" if entry["batch_size"] < n else "batch n"
        convergence.plot(np.cumsum(run["epoch_seconds"]), run["loss_history"],
                         marker="o", label=label)  # fmt: skip
    convergence.axhline(report["target_loss"]["value"], color="0.2", linestyle="--",
                        label="target loss")  # fmt: skip
    convergence.set(xlim=(0, None), yscale="log", xlabel="wall time (s, cumulative epochs)",
                    ylabel="training loss (epoch mean)",
                    title=f"Training loss vs wall time ({shown})\n"
                          f"{report['problem']['loss']}, {report['problem']['optimizer']}, "
                          f"lr={report['problem']['lr']:g}")  # fmt: skip
    convergence.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.12), ncol=4)
    convergence.grid(True, which="both", alpha=0.3)
    fig.text(0.01, 0.01, report["machine_line"], fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- the whole run -----------------------------------------------------------------


def progress(message):
    """A progress line on stderr, after whatever stdout holds so far."""
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)


def main(argv=None):
    """Run the study, print the table, write ``results.json`` and ``scaling.png``.

    Returns
    -------
    dict
        What ``results.json`` holds.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    # Every mistake in the arguments or the data is a usage error, not a traceback.
    try:
        resolve(args)
        threads = set_threads(args.threads)
        X, y, n_outputs, source = load_problem(args)
        n, d = X.shape
        batch_sizes = resolve_batch_sizes(args.batch_sizes, n)
        backends = list(args.backends or fastgd.available_backends())
        if REFERENCE not in backends:
            backends.append(REFERENCE)
        for name in backends:
            get_backend(name)  # says how to install a backend that is not usable here
        settings = dict(SETTINGS, loss=args.loss, optimizer=args.optimizer, lr=args.lr,
                        epochs=args.epochs)  # fmt: skip
        cfgs = {b: check_fit_settings(batch_size=b, n_samples=n, **settings)[0]
                for b in batch_sizes}  # fmt: skip
    except (ValueError, TypeError, OSError, ImportError) as exc:
        parser.error(str(exc))

    line = machine_line(threads)
    print(line)
    print(f"problem: n={n:,} d={d} {X.dtype}, {args.loss}, {args.optimizer} lr={args.lr:g}, "
          f"{args.epochs} epochs x {args.repeats} repeats, "
          f"{'synthetic' if source['kind'] == 'synthetic' else args.data[0]}")  # fmt: skip
    order = np.random.default_rng(args.seed).permutation(n).astype(row_order_dtype(n))
    floor = memory_floor(X, order, repeats=max(3, args.repeats))
    for kind in ("sequential", "shuffled"):
        f = floor[kind]
        print(f"floor, read X once {kind + ':':<12} {f['seconds'] * 1e3:8.2f} ms  "
              f"{si(f['rows_per_s'], ' rows/s'):>13}  {si(f['bytes_per_s'], 'B/s'):>9}")

    reference_per_row = {}
    checks = check_cases(X, y, order, cfgs, n_outputs, args.lr, reference_per_row)
    cases = {}
    for bs in batch_sizes:
        # Backends interleaved, so that the machine's noise hits them alike.
        for name in backends:
            if name == REFERENCE:
                timed = functools.partial(capped_reference_run, X, y, order, cfgs[bs],
                                          n_outputs, args, reference_per_row)  # fmt: skip
            else:
                timed = functools.partial(full_run, name, X, y, cfgs[bs], n_outputs, args)
            cases[name, bs] = Case(name, timed, checks[bs])
    rtol = max((tolerance(b, X.dtype) for b in backends if b != REFERENCE), default=0.0)
    runs = check_then_time(
        cases, args.repeats, where="at every batch size",
        between_rounds=lambda i: progress(f"repeat {i + 1}/{args.repeats} ..."),
    )  # fmt: skip
    print()
    # An extrapolated reference run has no losses of its own: by the backend
    # contract (checked above) they are those of any compiled backend.
    for bs in batch_sizes:
        twin = next((runs[b, bs][0] for b in backends
                     if runs[b, bs][0]["loss_history"] is not None), None)  # fmt: skip
        for run in runs[REFERENCE, bs]:
            if run["loss_history"] is None and twin is not None:
                run["loss_history"] = list(twin["loss_history"])

    losses = [loss for rs in runs.values() for run in rs for loss in run["loss_history"] or ()]
    if args.target_loss is not None:
        target = {"value": args.target_loss, "rule": "--target-loss"}
    else:
        best = min(losses) if losses else math.nan
        target = {"value": 1.01 * best, "best_loss": best,
                  "rule": "1.01 x the lowest epoch loss any configuration reached"}
    results = []
    for name in backends:
        for bs in batch_sizes:
            entry = {"backend": name, "batch_size": bs}
            entry.update(summarise(runs[name, bs], n, floor, target["value"]))
            results.append(entry)

    best_ours = {bs: max(e["rows_per_s"]["median"] for e in results
                         if e["batch_size"] == bs and e["backend"] != REFERENCE)
                 for bs in batch_sizes if len(backends) > 1}  # fmt: skip
    peers = []
    if not args.no_peers:
        progress("peers ...")
        if 1 in batch_sizes:  # scikit-learn's SGD updates after every row
            sk = run_sklearn(X, y, args, n_outputs, floor, best_ours.get(1))
            peers.append({"name": "sklearn", "batch_size": 1, **sk})
        for bs, figures in run_torch(X, y, args, n_outputs, batch_sizes, floor,
                                     best_ours).items():  # fmt: skip
            peers.append({"name": "torch", "batch_size": bs, **figures})

    report = {
        "machine": machine_info(threads),
        "machine_line": line,
        "problem": {
            "n": n, "d": d, "dtype": str(X.dtype), "n_outputs": n_outputs,
            "loss": args.loss, "optimizer": args.optimizer, "lr": args.lr,
            "schedule": "constant", "epochs": args.epochs, "repeats": args.repeats,
            "batch_sizes": batch_sizes, "backends": backends, "seed": args.seed,
            "cap_seconds": args.cap_seconds, "quick": args.quick, "source": source,
        },
        "floor": floor,
        "target_loss": target,
        "check": {"reference": REFERENCE, "rtol": rtol, "passed": True},
        "results": results,
        "peers": peers,
    }  # fmt: skip
    text = table(report)
    print(text)
    print(f"\nfloor: % of {si(floor['shuffled']['rows_per_s'], ' rows/s')}, the rate of "
          f"reading X once in the shuffled row order; target loss {target['value']:.4g} "
          f"({target['rule']})")  # fmt: skip
    if peers:
        print(f"peers: sklearn = scikit-learn's SGD estimator, rows x epochs / fit() time "
              f"(its input checks included); torch = DataLoader(TensorDataset) + "
              f"nn.Linear + manual SGD step, threads={threads}; 'ours' = our fastest "
              f"backend at that batch size")  # fmt: skip

    os.makedirs(args.out, exist_ok=True)
    png = os.path.join(args.out, "scaling.png")
    try:
        plot(report, png)
        report["plot"] = png
    except ImportError:
        report["plot"] = None
        print("plot skipped: matplotlib is not installed "
              "(python -m pip install '.[bench]' in the fastgd clone)")  # fmt: skip
    with open(os.path.join(args.out, "results.json"), "w") as out:
        json.dump(report, out, indent=1)
    print(f"wrote {os.path.join(args.out, 'results.json')}"
          + (f" and {png}" if report["plot"] else ""))
    return report


if __name__ == "__main__":
    main()
