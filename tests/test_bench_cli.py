"""The bench CLIs (`python -m bench.scaling`, `bench.floor`, `bench.startup`, `bench.sparse`) on tiny problems.

Smoke tests of the tools, not of their timings: every promised figure is in
the JSON for every (backend, batch size), and the plot is written.
"""

import json

import numpy as np
import pytest

import fastgd
from bench import scaling
from bench._common import readme_block, readme_markers

FIGURES = ("rows_per_s", "seconds_per_epoch", "updates_per_s", "final_loss",
           "time_to_target_s", "epochs_to_target", "floor_fraction", "extrapolated")  # fmt: skip
TINY = ["--n-samples", "3000", "--n-features", "8", "--epochs", "2", "--repeats", "2"]


def test_scaling_reports_every_figure_for_every_backend_and_batch_size(tmp_path, capsys):
    # A tiny cap makes the reference's batch-size-1 run extrapolated.
    scaling.main(TINY + ["--batch-sizes", "1", "32", "n", "--cap-seconds", "0.001",
                         "--out", str(tmp_path)])  # fmt: skip
    report = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "scaling.png").stat().st_size > 0

    backends = fastgd.available_backends()
    assert report["problem"]["batch_sizes"] == [1, 32, 3000]
    entries = {(e["backend"], e["batch_size"]): e for e in report["results"]}
    assert set(entries) == {(b, bs) for b in backends for bs in (1, 32, 3000)}
    for entry in entries.values():
        for figure in FIGURES:
            assert figure in entry
        for figure in ("rows_per_s", "seconds_per_epoch", "updates_per_s", "final_loss"):
            assert entry[figure]["min"] <= entry[figure]["median"] <= entry[figure]["max"]
        assert entry["floor_fraction"]["shuffled"] > 0
    for kind in ("sequential", "shuffled"):
        assert report["floor"][kind]["rows_per_s"] > 0
    for key in ("cpu", "cores", "numpy", "numba", "threads"):
        assert key in report["machine"]

    # The best configuration reaches the default target (1.01 x the best loss).
    assert any(e["time_to_target_s"] is not None for e in entries.values())
    # The reference was capped, says so, and carries the compiled losses.
    reference = entries["numpy", 1]
    assert reference["extrapolated"] and reference["timed_rows"] < 3000
    assert reference["final_loss"] == entries["numba", 1]["final_loss"]
    # Peers are reported whether or not they are installed.
    assert {p["name"] for p in report["peers"]} == {"sklearn", "torch"}
    assert all(p["status"] == "ok" or "not installed" in p["status"] for p in report["peers"])

    out = capsys.readouterr().out
    assert "machine:" in out and "floor" in out and "extrapolated" in out


def test_scaling_reads_the_users_arrays(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3)).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", X @ np.array([1.0, -1.0, 0.5], dtype=np.float32))
    report = scaling.main(["--data", str(tmp_path / "X.npy"), str(tmp_path / "y.npy"),
                           "--batch-sizes", "16", "--epochs", "1", "--repeats", "1",
                           "--no-peers", "--out", str(tmp_path / "out")])  # fmt: skip
    assert report["problem"]["n"] == 500 and report["problem"]["dtype"] == "float32"
    assert report["problem"]["source"]["kind"] == "files"
    assert report["peers"] == []


@pytest.mark.parametrize("argv, message", [
    (["--batch-sizes", "0"], "batch_size must be an integer >= 1"),
    (["--loss", "squared_eror"], "Did you mean 'squared_error'?"),
    (["--epochs", "0"], "epochs must be an integer >= 1"),
])  # fmt: skip
def test_scaling_rejects_bad_arguments_with_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        scaling.main(TINY + argv + ["--out", "unused"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_floor_reports_every_mode_batch_size_and_thread_figure(tmp_path, capsys):
    from bench import floor

    floor.main(["--n-samples", "3000", "--n-features", "8", "--epochs", "2",
                "--batch-sizes", "1", "8", "4096", "--thread-batch-sizes", "2048",
                "--hogwild-batch-sizes", "4", "--out", str(tmp_path)])  # fmt: skip
    report = json.loads((tmp_path / "floor.json").read_text())
    for dtype in ("float64", "float32"):
        figures = report["dtypes"][dtype]
        assert figures["floor"]["False"] > 0 and figures["floor"]["True"] > 0
        assert set(figures["floor_shares"]) == set(figures["rows_per_s"])
        assert all(share > 0 for share in figures["floor_shares"].values())
        assert set(figures["rows_per_s"]) == {f"{mode}@{b}" for mode in ("False", "'batches'", "True")
                                              for b in (1, 8, 3000)}  # fmt: skip
    assert set(report["threads"]) == {"data@2048", "hogwild@4"}
    assert all(rate > 0 for rate in report["thread_floor"].values())
    assert report["thread_arithmetic_speedup"] > 0
    text = capsys.readouterr().out
    assert "machine:" in text and "batch 1 / batch 4096" not in text  # 4096 > n: clipped
    assert "float32 / float64" in text and "parallel='hogwild'" in text


def test_startup_reports_import_compile_and_memory(capsys):
    from bench import startup

    startup.main(["--repeats", "1", "--memory-gb", "0.01"])
    text = capsys.readouterr().out
    for phrase in ("import fastgd: median", "cache cold", "cache warm", "in memory", "np.memmap"):
        assert phrase in text


def test_sparse_bench_times_every_compiled_backend_and_sklearn(capsys):
    from bench import sparse

    rates = sparse.main(["--n-samples", "3000", "--n-features", "500", "--nnz-per-row",
                         "5", "--batch-sizes", "1", "16", "--repeats", "1"])  # fmt: skip
    backends = [b for b in fastgd.available_backends() if b != "numpy"]
    for backend in backends:
        for batch_size in (1, 16):
            assert rates[f"fastgd {backend}", batch_size][0] > 0
    out = capsys.readouterr().out
    assert "machine:" in out and "checked:" in out
    assert "sklearn SGDClassifier" in out and "/ sklearn:" in out


def test_end_to_end_reports_every_cell_and_rewrites_the_readme_table(tmp_path, capsys):
    from bench import end_to_end

    readme = tmp_path / "README.md"
    start, end = readme_markers(end_to_end.README_BLOCK)
    readme.write_text(f"intro\n{start}\nold\n{end}\nend\n")
    end_to_end.main(["--sizes", "3000x8", "--dtypes", "float32", "--batch-sizes", "1", "8", "n",
                     "--epochs", "2", "--repeats", "2", "--out", str(tmp_path),
                     "--readme", str(readme)])  # fmt: skip
    report = json.loads((tmp_path / "end_to_end.json").read_text())
    problem = report["problems"]["3000x8 float32"]
    backends = [b for b in ("numba", "cython") if b in fastgd.available_backends()]
    for loss in ("squared_error", "log_loss"):
        assert problem[f"{loss} checks"]["of_a_read"] > 0
        for mode in ("True", "False", "'batches'"):
            for batch_size in (1, 8, 3000):
                for backend in backends:
                    cell = problem[f"{loss} {mode}@{batch_size} {backend}"]
                    assert cell["floor_share"] > 0 and len(cell["fit_seconds"]) == 2
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("end\n") and "old" not in text
    assert text.count("| 3000 × 8 float32 |") == 6  # two losses x three shuffle modes
    assert "checked:" in capsys.readouterr().out


def test_cycles_bench_reports_every_cell_against_its_least_cycles(tmp_path, capsys):
    from bench import cycles

    cycles.main(["--dtypes", "float32", "--widths", "8", "--batch-sizes", "1", "8",
                 "--repeats", "1", "--visits", "4096", "--floor-rows", "1000",
                 "--out", str(tmp_path)])  # fmt: skip
    report = json.loads((tmp_path / "cycles.json").read_text())
    assert report["clock_hz"] > 0 and report["floor_cycles"]["float32 d=8"] > 0
    backends = [b for b in ("numba", "cython") if b in fastgd.available_backends()]
    expected = {f"float32 d=8 {loss} bs{bs} {order} {backend}"
                for loss in ("squared_error", "log_loss") for bs in (1, 8)
                for order in ("sequential", "shuffled") for backend in backends}  # fmt: skip
    assert set(report["cells"]) == expected
    assert all(c["cycles_per_row"] > 0 and c["least_cycles"] > 0 for c in report["cells"].values())
    assert "checked:" in capsys.readouterr().out


def test_least_cycles_counts_the_rows_vectors():
    from bench.cycles import least_cycles

    # d = 63: 16 vectors of 4 (the intercept fills the last); batch size 1:
    # 64 loads at 2 per cycle.
    assert least_cycles(63, 1) == 32
    # Batch size 16: the batch's 32 loads, 32 stores and 16 multiply-adds,
    # shared by its 16 rows.
    assert least_cycles(63, 16) == max((64 + 2) / 2, 16 + 2, (32 + 1) / 2)


def test_the_readme_end_to_end_table_is_the_committed_figures():
    # Generated, not pasted: docs/end_to_end.json is what `make bench-fit`
    # wrote, and the README shows exactly its table.
    from pathlib import Path

    from bench import end_to_end

    root = Path(__file__).resolve().parents[1]
    figures = json.loads((root / "docs" / "end_to_end.json").read_text())
    readme = (root / "README.md").read_text()
    block = readme_block(readme, end_to_end.README_BLOCK)
    assert block.strip() == end_to_end.readme_table(figures).strip()


def test_the_readme_dask_table_is_the_committed_figures():
    # docs/dask.json is what `make bench-dask` wrote; the README shows its table.
    from pathlib import Path

    from bench import dask as dask_bench

    root = Path(__file__).resolve().parents[1]
    figures = json.loads((root / "docs" / "dask.json").read_text())
    block = readme_block((root / "README.md").read_text(), dask_bench.README_BLOCK)
    assert block.strip() == dask_bench.readme_table(figures).strip()


def test_dask_bench_reports_fastgd_strategies_and_the_peers_or_why_not(tmp_path, capsys):
    pytest.importorskip("distributed")
    from bench import dask as dask_bench

    readme = tmp_path / "README.md"
    start, end = readme_markers(dask_bench.README_BLOCK)
    readme.write_text(f"intro\n{start}\nold\n{end}\nend\n")
    dask_bench.main(["--rows", "4000", "--n-features", "8", "--workers", "1", "--epochs", "2",
                     "--out", str(tmp_path), "--readme", str(readme)])  # fmt: skip
    report = json.loads((tmp_path / "dask.json").read_text())
    assert (tmp_path / "dask.png").stat().st_size > 0
    methods = report["workers"]["1"]["methods"]
    for strategy in ("average", "gradient"):
        fastgd_run = methods[f"fastgd {strategy}"]
        assert fastgd_run["rows_per_second"] > 0 and len(fastgd_run["curve"]) == 2
        assert fastgd_run["bytes_per_round"] >= 0 and fastgd_run["first_round_bytes"] >= 0
        assert 0.0 <= fastgd_run["scheduler_share"] <= 1.0
    # Every peer either ran or says why not.
    assert all("curve" in m or m["skipped"] for m in methods.values())
    assert "fastgd average" in capsys.readouterr().out
    text = readme.read_text()
    assert "old" not in text and text.count("| 1 | ") == len(methods)
