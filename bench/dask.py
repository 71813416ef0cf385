"""fastgd.dask against dask-ml and dask-glm: loss against wall time on a LocalCluster.

For each worker count: one persisted problem (log loss, float64, 4 blocks
per worker), then each method trained on it, recording rows/s, the training
loss against training time (:class:`TrainingClock`: the log loss at the
parameters after each epoch, its evaluation not timed; dask-glm's solvers
give one point, after all their iterations), whether and when it reaches the
target loss (the best loss any method reached, times 1.01), and for fastgd the scheduler's share of a round (the
round's wall time less the busiest worker's compute in it, over the round's
wall time, from the scheduler's task stream) and the bytes moved per round
(the workers' ``transfer_outgoing_bytes_total``, counted from the end of the
first round, which also moves what the fit places once; that round's own
bytes are ``first_round_bytes``). Peers
that do not install (dask-ml, dask-glm against today's dask) are recorded
as skipped, with the reason.

``--readme README.md`` rewrites the README's table of the figures
(:func:`readme_table`); ``--table-from dask.json`` rewrites it from a
previous run's JSON, measuring nothing.

    python -m bench.dask --out bench/out [--rows 200000] [--workers 1 2]
"""

import json
import time

import numpy as np

from bench._common import (
    add_flag,
    bench_parser,
    machine_info,
    machine_line,
    rewrite_readme_block,
    write_json,
)

README_BLOCK = "dask"  # the README's markers of the table

TARGET_SLACK = 1.01


def log_loss(X, y, coef, intercept):
    """Mean log loss of a linear model on dask X, y (computed)."""
    import dask.array as da

    z = X @ np.asarray(coef, dtype=float).reshape(-1) + float(np.ravel(intercept)[0])
    return float(da.mean(da.logaddexp(0, z) - y * z).compute())


def transferred_bytes(client):
    """Bytes the workers have sent to one another so far (Dask's own counter)."""
    counts = client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
    return sum(counts.values())


class TrainingClock:
    """Seconds of training since it started: the loss evaluations for the curve left out.

    Every method's curve is the training log loss at its parameters after
    each epoch (:func:`log_loss`, the same code for all), placed at the
    training time spent until then; the evaluations themselves, and the
    bytes they move, are not counted.
    """

    def __init__(self, client):
        self.client, self.started, self.paused, self.bytes = client, time.perf_counter(), 0.0, 0

    def seconds(self):
        return time.perf_counter() - self.started - self.paused

    def point(self, X, y, coef, intercept):
        """``(training seconds so far, log loss at coef and intercept)``."""
        at, before = self.seconds(), time.perf_counter()
        moved = transferred_bytes(self.client)
        loss = log_loss(X, y, coef, intercept)
        self.bytes += transferred_bytes(self.client) - moved
        self.paused += time.perf_counter() - before
        return at, loss


def fastgd_method(strategy, epochs):
    def run(client, X, y):
        import distributed

        import fastgd.dask

        curve, clock = [], TrainingClock(client)
        # Bytes are counted from the end of the first round: that round also
        # moves what the fit itself places once (y's blocks beside X's).
        after_first = []
        # Each epoch's span on the task stream's clock (time.time()), from
        # the end of the callback before it to the start of its own.
        starts, ends = [time.time()], []

        def record(epoch, loss, coef, intercept):
            ends.append(time.time())
            if not after_first:
                after_first.append(transferred_bytes(client) - clock.bytes)
            curve.append(clock.point(X, y, coef, intercept))
            starts.append(time.time())

        before = transferred_bytes(client)
        with distributed.get_task_stream(client) as stream:
            settings = dict(loss="log_loss", lr=0.5 if strategy == "gradient" else 0.05,
                            epochs=epochs, random_state=0, callback=record,
                            batch_size=None if strategy == "gradient" else 256)  # fmt: skip
            result = fastgd.dask.fit(X, y, strategy=strategy, client=client, **settings)
        seconds = clock.seconds()
        end = transferred_bytes(client) - clock.bytes
        rounds = round_overheads(stream.data, list(zip(starts, ends)), result.epoch_seconds)
        steady = (end - after_first[0]) / (epochs - 1) if epochs > 1 else None
        return dict(curve=curve, seconds=seconds, epochs=epochs,
                    first_round_bytes=after_first[0] - before, bytes_per_round=steady,
                    **rounds)  # fmt: skip

    return run


def round_overheads(tasks, spans, epoch_seconds):
    """The scheduler's share of each round: (wall − the busiest worker's compute) / wall.

    A round's compute is that of the tasks whose compute started in its
    span (``spans``: start and end of each epoch, callbacks left out); a
    worker's is the sum of its tasks', as it runs one at a time.
    The first round, which also compiles the kernels on the workers, is left
    out when there are others.
    """
    shares = []
    for (start, stop), wall in zip(spans, epoch_seconds):
        busy = {}
        for task in tasks:
            for part in task["startstops"]:
                if part["action"] == "compute" and start <= part["start"] < stop:
                    seconds = part["stop"] - part["start"]
                    busy[task["worker"]] = busy.get(task["worker"], 0.0) + seconds
        if wall > 0:
            shares.append(max(0.0, (wall - max(busy.values(), default=0.0)) / wall))
    steady = shares[1:] or shares
    return dict(scheduler_share=float(np.median(steady)) if steady else None,
                round_seconds=float(np.median(epoch_seconds)))  # fmt: skip


def dask_ml_method(epochs):
    def run(client, X, y):
        from dask_ml.wrappers import Incremental
        from sklearn.linear_model import SGDClassifier

        curve, clock = [], TrainingClock(client)
        model = Incremental(SGDClassifier(loss="log_loss", random_state=0))
        for _ in range(epochs):
            model.partial_fit(X, y, classes=[0, 1])
            curve.append(clock.point(X, y, model.estimator_.coef_, model.estimator_.intercept_))
        return dict(curve=curve, seconds=clock.seconds(), epochs=epochs)

    return run


def dask_glm_method(solver, epochs):
    def run(client, X, y):
        from dask_glm.algorithms import _solvers

        started = time.perf_counter()
        beta = _solvers[solver](X, y, max_iter=epochs)
        seconds = time.perf_counter() - started
        return dict(curve=[(seconds, log_loss(X, y, beta, 0.0))], seconds=seconds, epochs=epochs)

    return run


def methods(epochs):
    return {
        "fastgd average": fastgd_method("average", epochs),
        "fastgd gradient": fastgd_method("gradient", epochs),
        "dask-ml Incremental(SGDClassifier)": dask_ml_method(epochs),
        **{f"dask-glm {solver}": dask_glm_method(solver, epochs)
           for solver in ("gradient_descent", "lbfgs", "admm")},
    }


BLOCKS_PER_WORKER = 4


def make_block(seed, index, rows, d):
    """Rows of block ``index`` of the problem: X from its own seeded stream, y from X."""
    rng = np.random.default_rng([seed, index])
    X = rng.standard_normal((rows, d))
    w = np.random.default_rng(seed).standard_normal(d) / np.sqrt(d)
    y = ((X @ w + 0.5 * rng.standard_normal(rows)) > 0).astype(np.float64)
    return X, y


def problem(client, n, d):
    """A persisted log-loss problem, :data:`BLOCKS_PER_WORKER` blocks per worker, consecutive.

    Each block is made by a task on the worker that keeps it (blocks 0 to 3
    on the first worker, and so on), X and y together, so that every worker
    holds as many rows, and a lost block is recomputed from its task.
    """
    import dask
    import dask.array as da

    workers = sorted(client.scheduler_info()["workers"])
    n_blocks = BLOCKS_PER_WORKER * len(workers)
    bounds = [n * b // n_blocks for b in range(n_blocks + 1)]
    X_parts, y_parts = [], []
    for b in range(n_blocks):
        rows, where = bounds[b + 1] - bounds[b], [workers[b // BLOCKS_PER_WORKER]]
        block = client.submit(make_block, 0, b, rows, d, workers=where)
        X_parts.append(da.from_delayed(client.submit(lambda p: p[0], block, workers=where),
                                       (rows, d), np.float64))  # fmt: skip
        y_parts.append(da.from_delayed(client.submit(lambda p: p[1], block, workers=where),
                                       (rows,), np.float64))  # fmt: skip
    return dask.persist(da.concatenate(X_parts), da.concatenate(y_parts))


def measure(workers, args, say):
    import distributed

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:  # fmt: skip
        with distributed.Client(cluster) as client:
            X, y = problem(client, args.rows, args.n_features)
            distributed.wait([X, y])
            figures = {}
            for name, run in methods(args.epochs).items():
                if args.methods and not any(part in name for part in args.methods):
                    continue
                try:
                    found = run(client, X, y)  # its seconds are its training's
                    found["rows_per_second"] = args.rows * found["epochs"] / found["seconds"]
                    found.pop("coef", None), found.pop("intercept", None)
                except ImportError as exc:
                    found = dict(skipped=f"not installed: {exc}")
                except Exception as exc:  # a peer broken by today's dask: recorded, not fatal
                    found = dict(skipped=f"{type(exc).__name__}: {exc}")
                figures[name] = found
                say(f"{workers} worker(s)  {name}: " + (
                    found["skipped"] if "skipped" in found else
                    f"{found['rows_per_second']:,.0f} rows/s, final loss {found['curve'][-1][1]:.4f}"
                ))  # fmt: skip
    return figures


def time_to_target(figures):
    """The target loss (best reached × 1.01) and, per method, the first time it is reached."""
    finals = [f["curve"][-1][1] for f in figures.values() if "curve" in f]
    target = min(finals) * TARGET_SLACK
    for found in figures.values():
        if "curve" in found:
            found["target_seconds"] = next((s for s, loss in found["curve"] if loss <= target), None)
    return target


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (workers, figures) in zip(axes[0], results.items()):
        for name, found in figures["methods"].items():
            if "curve" in found:
                seconds, losses = zip(*found["curve"])
                ax.plot(seconds, losses, marker=".", label=name)
        ax.axhline(figures["target_loss"], color="grey", linestyle=":", label="target")
        ax.set(title=f"{workers} worker(s)", xlabel="wall time (s)", ylabel="training log loss")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def readme_table(figures):
    """The README's table of a run: per worker count and method, time to the target and ratios."""
    args = figures["args"]
    lines = [
        f"{args['rows']:,} × {args['n_features']} rows of float64 persisted on a "
        f"`LocalCluster` (1 thread per worker, 4 blocks per worker), log loss, "
        f"{args['epochs']} epochs or iterations each; the loss is the training log loss at "
        "the parameters after each epoch (dask-glm: after its last iteration), the time "
        "the training's alone (the evaluations are not timed), the target the best final "
        f"loss of any method times {TARGET_SLACK}. "
        f"{figures['machine']['cpu']}, {figures['machine']['cores']} cores, {figures['date']}.",
        "",
        "| workers | method | reaches the target in | time over fastgd average's | rows/s "
        "| final loss | scheduler's share of a round | bytes moved per round |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for workers, run in figures["workers"].items():
        methods = run["methods"]
        lead = methods.get("fastgd average", {}).get("target_seconds")
        for name, found in methods.items():
            if "skipped" in found:
                lines.append(f"| {workers} | {name} | skipped: {found['skipped']} "
                             "| | | | | |")  # fmt: skip
                continue
            reached = found["target_seconds"]
            if reached is None:
                when = f"not reached in {found['seconds']:.2f} s"
                versus = f"> {found['seconds'] / lead:.1f}×" if lead else "–"
            else:
                when = f"{reached:.2f} s"
                versus = f"{reached / lead:.1f}×" if lead else "–"
            share = found.get("scheduler_share")
            moved = found.get("bytes_per_round")
            lines.append(
                f"| {workers} | {name} | {when} | {versus} | {found['rows_per_second']:,.0f} "
                f"| {found['curve'][-1][1]:.4f} | "
                + ("–" if share is None else f"{share:.1%}") + " | "
                + ("–" if moved is None else f"{moved:,.0f}") + " |"
            )
    return "\n".join(lines)


def main(argv=None):
    import os

    parser = bench_parser(__doc__)
    parser.add_argument("--rows", type=int, default=4_000_000, help="rows of the problem")
    add_flag(parser, "n_features", 64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts, one LocalCluster each (1 thread per worker)")
    add_flag(parser, "epochs", 5)
    parser.add_argument("--methods", nargs="+",
                        help="run only the methods whose names contain one of these")
    add_flag(parser, "out", "bench/out")
    parser.add_argument("--readme", help="rewrite this README's table of the figures")
    parser.add_argument("--table-from", metavar="JSON",
                        help="measure nothing: rewrite --readme's table from this dask.json")
    args = parser.parse_args(argv)
    if args.table_from:
        with open(args.table_from) as f:
            figures = json.load(f)
        rewrite_readme_block(args.readme, README_BLOCK, readme_table(figures))
        return figures
    print(machine_line())
    results = {}
    for workers in args.workers:
        found = measure(workers, args, say=print)
        target = time_to_target(found)
        results[workers] = dict(methods=found, target_loss=target)
        for name, method in found.items():
            if "curve" in method:
                reached = method["target_seconds"]
                print(f"{workers} worker(s)  {name}: target {target:.4f} "
                      + ("not reached" if reached is None else f"reached in {reached:.2f} s")
                      + ("" if "scheduler_share" not in method else
                         f", scheduler share of a round {method['scheduler_share']:.0%}, "
                         + ("" if method["bytes_per_round"] is None else
                            f"{method['bytes_per_round']:,.0f} bytes moved per round after "
                            f"the first ({method['first_round_bytes']:,.0f})")))  # fmt: skip
    figures = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "args": vars(args),
               "workers": results}  # fmt: skip
    print(f"wrote {write_json(args.out, 'dask.json', figures)}")
    plot(results, os.path.join(args.out, "dask.png"))
    print(f"wrote {os.path.join(args.out, 'dask.png')}")
    if args.readme:
        rewrite_readme_block(args.readme, README_BLOCK, readme_table(figures))
        print(f"rewrote the Dask table of {args.readme}")
    return figures


if __name__ == "__main__":
    main()
