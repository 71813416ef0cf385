"""fastgd.dask on Dask's own test cluster (``distributed.utils_test``'s fixtures).

``client`` is a Client of ``cluster()``: a scheduler and 2 worker processes
started afresh for the test, with ``cleanup`` checking that nothing (thread,
process, config change) outlives it. ``gen_cluster`` does not fit here: its
tests are coroutines on an asynchronous client, and ``fastgd.dask.fit``
is a synchronous call.
"""

import signal
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from distributed.utils_test import (  # noqa: E402, F401  (Dask's fixtures, used by name)
    cleanup,
    client,
    cluster_fixture,
    loop,
    loop_in_thread,
)

import fastgd.dask  # noqa: E402
from support import make_problem  # noqa: E402


@pytest.fixture(autouse=True)
def sigint_handler_kept():
    # distributed.utils_test's cluster() leaves SIGINT ignored in this
    # process (it starts its processes with it ignored): put back what was
    # there, or the interrupt tests that follow in this process cannot stop.
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def held_tasks(client):
    return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))


def test_fit_on_worker_processes_is_the_local_schedulers_and_leaves_nothing_held(
    client, monkeypatch
):
    X, y = make_problem("log_loss", np.float64, n=1200)
    X_blocks, y_blocks = da.from_array(X, chunks=(300, -1)), da.from_array(y, chunks=300)
    settings = dict(loss="log_loss", optimizer="adam", batch_size=16, epochs=3, random_state=9,
                    rounds_per_epoch=2)  # fmt: skip
    during = []

    def count_held(epoch, loss, coef, intercept):
        during.append(held_tasks(client))

    on_cluster = fastgd.dask.fit(X_blocks, y_blocks, client=client, callback=count_held,
                                 **settings)  # fmt: skip
    assert min(during) >= 4  # the checked blocks, at least, while it trains

    def no_client():
        raise ValueError("No clients found")

    # The same bits in this process, on Dask's local scheduler.
    monkeypatch.setattr(distributed, "get_client", no_client)
    local = fastgd.dask.fit(X_blocks, y_blocks, **settings)
    assert np.array_equal(on_cluster.coef, local.coef)
    assert on_cluster.loss_history == local.loss_history
    # The fit released every block and result it held on the cluster.
    deadline = time.monotonic() + 10
    while held_tasks(client) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert held_tasks(client) == 0
