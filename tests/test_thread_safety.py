"""Threaded fits never kill or hang the process: in a forked child, or beside another thread.

GNU OpenMP (the Cython extension's ``prange`` and Numba's "omp" layer, one
libgomp for both) cannot start threads in a child forked after its threads
had run, and Numba's "workqueue" layer aborts when two threads run parallel
regions at once. There a threaded epoch runs on one thread, with one
warning per process, and gives the serial fit's result
(``_cpu.usable_threads``). Each case runs in a fresh interpreter of its own,
so that a crash or a hang fails its test instead of pytest, and so that no
thread pool of an earlier test is inherited.
"""

import itertools
import json
import os
import subprocess
import sys
import textwrap

import pytest

from fastgd._validation import usable_cpu_count
from fastgd.backends._cpu import GNU_OPENMP
from fastgd.backends._numba import CHUNK_ROWS
from support import backends_with

pytestmark = pytest.mark.skipif(usable_cpu_count() < 2, reason="fit runs one thread on one CPU")

# What both scripts share: a problem whose data-parallel batches (all its
# rows, over CHUNK_ROWS) really run on threads, and fits that record the
# warnings of fastgd they raise. A fit's result is its coef, intercept and
# loss history, as JSON.
COMMON = f"""
import json, sys, threading, warnings
import multiprocessing
import numpy as np
import fastgd
from fastgd._synthetic import make_problem
from fastgd.backends import get_backend

X, y = make_problem({2 * CHUNK_ROWS + 100}, 5, task="regression", random_state=0)
MODES = {{"data": dict(batch_size=len(X)), "hogwild": dict(batch_size=64, parallel="hogwild")}}


def train(backend, mode, n_threads):
    settings = dict(MODES[mode])
    if n_threads == 1:
        # The serial epoch a fallback runs: hogwild's batches, no parallel region.
        settings.pop("parallel", None)
    result = fastgd.fit(X, y, backend=backend, epochs=2, random_state=0, n_threads=n_threads,
                        **settings)
    return dict(coef=result.coef.tolist(), intercept=float(result.intercept),
                loss_history=result.loss_history)


def messages(caught):
    return [str(w.message) for w in caught if str(w.message).startswith("fastgd: ")]


def threaded_fits(backend):
    # Both modes, in one process: a fallback warns once, not once per fit.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits = {{mode: train(backend, mode, 2) for mode in MODES}}
    return dict(fits, warnings=messages(caught))
"""

# The parent fits serially, forks a child that runs threaded fits, runs
# threaded fits itself, then forks a second child that runs them again. A
# parent "numba.get_num_threads" only launches Numba's threading layer, as
# any code using Numba's threads may, instead of fitting on threads.
FORK_SCRIPT = COMMON + """
import numba

parent, child_backend = sys.argv[1:3]
parent_backend = "numba" if parent == "numba.get_num_threads" else parent


def in_child(connection):
    connection.send(threaded_fits(child_backend))
    connection.close()


def forked(timeout):
    receiver, sender = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=in_child, args=(sender,))
    child.start()
    sender.close()
    # The report is a few hundred bytes: the child's send never waits on the pipe.
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        return dict(outcome="hung")
    if child.exitcode != 0:
        return dict(outcome=f"exit code {child.exitcode}")
    return dict(receiver.recv(), outcome="finished")


report = dict(serial={mode: train(child_backend, mode, 1) for mode in MODES})
# Its first threaded fits may compile the threaded kernels (the on-disk
# cache is cold in a fresh checkout): a generous timeout.
report["before"] = forked(timeout=180)
# After the first child: asking Numba's runtime launches its layer.
report["runtimes"] = [get_backend(name).thread_runtime()
                      for name in (parent_backend, child_backend)]
if parent == "numba.get_num_threads":
    numba.get_num_threads()
else:
    report["parent"] = threaded_fits(parent_backend)
report["after"] = forked(timeout=30)
print(json.dumps(report))
"""

# Four threads fit at once, two data-parallel and two hogwild, until one of
# them has fallen back to one thread (or ROUNDS fits each).
CONCURRENT_SCRIPT = COMMON + """
ROUNDS = 200
serial = {mode: train("numba", mode, 1) for mode in MODES}
solo = threaded_fits("numba")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    results = []
    start = threading.Barrier(4)

    def worker(mode):
        start.wait()
        for _ in range(ROUNDS):
            results.append((mode, train("numba", mode, 2)))
            if messages(caught):
                break

    threads = [threading.Thread(target=worker, args=(mode,))
               for mode in ("data", "data", "hogwild", "hogwild")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
print(json.dumps(dict(layer=get_backend("numba").thread_runtime(), serial=serial, solo=solo,
                      results=results, warnings=messages(caught))))
"""


def run_script(script, *args, layer=None, timeout=400):
    """The JSON report of ``script`` run by a fresh interpreter; fails if it does not finish."""
    env = dict(os.environ)
    if layer is not None:
        env["NUMBA_THREADING_LAYER"] = layer
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"exit code {done.returncode}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.splitlines()[-1])


_reports = {}


def fork_report(parent, child, layer=None):
    """``FORK_SCRIPT``'s report, run once per (parent, child, layer) for the tests that read it."""
    key = (parent, child, layer)
    if key not in _reports:
        _reports[key] = run_script(FORK_SCRIPT, parent, child, layer=layer)
    return _reports[key]


def assert_fell_back_once(child, serial, why):
    assert child["outcome"] == "finished"
    # The serial epochs themselves: bit for bit, hogwild's included.
    assert child["data"] == serial["data"]
    assert child["hogwild"] == serial["hogwild"]
    assert len(child["warnings"]) == 1, child["warnings"]
    assert why in child["warnings"][0]


FORK_ADVICE = "start worker processes with the 'spawn' or 'forkserver' method"


def test_a_child_forked_after_threads_ran_fits_on_one_thread_and_warns_once(threaded_backend):
    report = fork_report(threaded_backend, threaded_backend)
    if report["runtimes"] != [GNU_OPENMP, GNU_OPENMP]:
        pytest.skip(f"threads on {report['runtimes'][0]}, which forks safely")
    assert_fell_back_once(report["after"], report["serial"], FORK_ADVICE)


@pytest.mark.parametrize("parent, child", list(itertools.permutations(backends_with("threads"), 2)))
def test_threads_of_either_backend_make_a_forked_child_of_the_other_fall_back(parent, child):
    # One libgomp under both: the Cython extension's threads break Numba's
    # in the child, and the other way round.
    report = fork_report(parent, child)
    if report["runtimes"] != [GNU_OPENMP, GNU_OPENMP]:
        pytest.skip(f"{report['runtimes']}: not both on GNU OpenMP")
    assert_fell_back_once(report["after"], report["serial"], FORK_ADVICE)


def test_a_child_forked_after_numba_launched_its_openmp_layer_falls_back():
    # Numba's omp layer kills the child of any process that launched it,
    # whether fastgd's threads ran there or other code's.
    if "numba" not in backends_with("threads"):
        pytest.skip("no Numba")
    report = fork_report("numba.get_num_threads", "numba")
    if report["runtimes"] != [GNU_OPENMP, GNU_OPENMP]:
        pytest.skip(f"Numba's threads on {report['runtimes'][0]}, which forks safely")
    assert_fell_back_once(report["after"], report["serial"], FORK_ADVICE)


def test_a_child_forked_before_any_threads_ran_keeps_them(threaded_backend):
    report = fork_report(threaded_backend, threaded_backend)
    child = report["before"]
    assert child["outcome"] == "finished"
    assert child["warnings"] == []
    assert child["data"] == report["serial"]["data"]


def test_a_threaded_fit_in_an_unforked_process_never_warns(threaded_backend):
    report = fork_report(threaded_backend, threaded_backend)
    assert report["parent"]["warnings"] == []
    assert report["parent"]["data"] == report["serial"]["data"]


@pytest.mark.parametrize("layer", ["workqueue", "tbb"])
def test_numba_keeps_its_threads_in_a_forked_child_on_a_fork_safe_layer(layer):
    if "numba" not in backends_with("threads"):
        pytest.skip("no Numba")
    if layer == "tbb":
        try:
            import numba.np.ufunc.tbbpool  # noqa: F401
        except ImportError:
            pytest.skip("no TBB")
    report = fork_report("numba", "numba", layer=layer)
    assert report["runtimes"] == [layer, layer]
    child = report["after"]
    assert child["outcome"] == "finished"
    assert child["warnings"] == []
    assert child["data"] == report["serial"]["data"]


def test_concurrent_threaded_fits_on_numba_workqueue_fall_back_instead_of_aborting():
    if "numba" not in backends_with("threads"):
        pytest.skip("no Numba")
    report = run_script(CONCURRENT_SCRIPT, layer="workqueue")
    assert report["layer"] == "workqueue"
    # One thread of Python at a time: its threads, no warning.
    assert report["solo"]["warnings"] == []
    assert report["solo"]["data"] == report["serial"]["data"]
    assert len(report["warnings"]) == 1, report["warnings"]
    assert "'workqueue' threading layer cannot run two threaded epochs" in report["warnings"][0]
    # Threaded or not, a data-parallel fit is the serial one.
    data = [result for mode, result in report["results"] if mode == "data"]
    assert data and all(result == report["serial"]["data"] for result in data)
