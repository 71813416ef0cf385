# Every target builds what it needs from scratch: a fresh clone needs only
# `make demo` or `make test` (Python >= 3.10 and a C compiler).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-debug bench bench-kernels bench-speed bench-floor bench-fit bench-dask bench-startup bench-sparse bench-cycles clean

$(STAMP): pyproject.toml setup.py $(wildcard fastgd/backends/*.pyx)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m bench.demo

# One pytest worker per CPU, a test file per worker at a time: the files
# share the Numba kernels they compile through the on-disk cache. (worksteal,
# tried on 2026-12-03, took 14:09 against loadfile's 13:13 here, and 3:18
# against 2:31 for test-debug, whose workers then compiled the same kernels.)
test: $(STAMP)
	$(PY) -m pytest -n auto --dist loadfile tests

# The kernels with their bounds checks on, on a subset of the suite (a few
# minutes; .ci/run runs it after `make test`). All of it happens in a copy of
# the sources under $(DEBUG_DIR), so the release build of the Cython extension
# in fastgd/backends/ and the Numba cache beside it are never touched:
# - the Cython extension is built there with FASTGD_CYTHON_DEBUG=1 (setup.py:
#   boundscheck, wraparound and initializedcheck on, -O0 -g);
# - Numba compiles every kernel afresh with NUMBA_BOUNDSCHECK=1, into a cache
#   directory of its own (a cached release kernel would otherwise be reused).
# The subset: the contract grid in float64 at batch size 1, the Cython
# backend's own tests (in float64: the indices the checks guard do not depend
# on the dtype) and its cells of the thread, hogwild, read-only and row-order
# tests, the property-based tests and divergence.
DEBUG_DIR := build/test-debug
DEBUG_TESTS := tests/test_contract.py tests/test_cython_backend.py \
	tests/test_properties.py tests/test_divergence.py tests/test_numba_boundscheck.py \
	tests/test_sparse.py tests/test_threads.py tests/test_copies.py
DEBUG_SELECT := (float64 and bs1) or (test_cython_backend and not float32) or test_properties \
	or test_divergence or test_numba_boundscheck \
	or (test_sparse and not matches_the and not lazy_reference) \
	or (test_threads and cython) \
	or (test_copies and cython and (read_only or memmap or int64))

test-debug: $(STAMP)
	$(PY) -m pip install --quiet "Cython>=3.0" "setuptools>=64"
	rm -rf $(DEBUG_DIR) && mkdir -p $(DEBUG_DIR)/src
	tar -cf - --exclude=./.git --exclude='./.venv*' --exclude=./build --exclude='*.so' \
		--exclude=__pycache__ --exclude='*.egg-info' --exclude=./bench/out . \
		| tar -xf - -C $(DEBUG_DIR)/src
	cd $(DEBUG_DIR)/src && FASTGD_CYTHON_DEBUG=1 $(abspath $(PY)) setup.py --quiet \
		build_ext --inplace
	cd $(DEBUG_DIR)/src && FASTGD_CYTHON_DEBUG=1 NUMBA_BOUNDSCHECK=1 \
		NUMBA_CACHE_DIR=$(abspath $(DEBUG_DIR))/numba-cache PYTHONPATH=. \
		$(abspath $(PY)) -m pytest -q -n auto --dist loadfile $(DEBUG_TESTS) -k "$(DEBUG_SELECT)"

# Batch size against speed and convergence: table, bench/out/results.json and
# bench/out/scaling.png (the `test` extra holds the `bench` extra's packages).
bench: $(STAMP)
	$(PY) -m bench.scaling --out bench/out

# pytest-benchmark: each backend's epoch kernel beside the NumPy reference.
bench-kernels: $(STAMP)
	$(PY) -m pytest bench/ --benchmark-group-by=param

bench-speed: $(STAMP)
	$(PY) -m bench.engine_speed

# The speed targets: every shuffle mode and batch size against the memory
# floor, float32 against float64, threads and hogwild (docs/performance-notes.md).
bench-floor: $(STAMP)
	$(PY) -m bench.floor

# Whole fastgd.fit calls against the memory floor, Numba against Cython, on
# the grid of issue 17 (about 10 minutes); writes docs/end_to_end.json
# and rewrites README.md's end-to-end table from it.
bench-fit: $(STAMP)
	$(PY) -m bench.end_to_end --out docs --readme README.md

# fastgd.dask's strategies beside dask-ml and dask-glm on LocalClusters of 1
# and 2 workers (4,000,000 x 64, about 15 minutes here): docs/dask.json and
# dask.png, and README.md's table rewritten from them (the peers are skipped,
# and said so, where they do not install).
bench-dask: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench,dask]"
	$(PY) -m bench.dask --out docs --readme README.md

# import time, first fit with Numba's cache cold and warm, memory of a fit.
bench-startup: $(STAMP)
	$(PY) -m bench.startup

# Sparse X (1,000,000 x 1,000,000 CSR, 20 entries a row): fastgd against
# scikit-learn's SGDClassifier, rows/s at batch sizes 1 and 256.
bench-sparse: $(STAMP)
	$(PY) -m bench.sparse

# What limits each cell: the kernels' cycles per row on rows in L1 against the
# least their loads and multiply-adds need, and the memory floor in cycles
# (docs/performance-notes.md, "What limits each"); writes bench/out/cycles.json.
bench-cycles: $(STAMP)
	$(PY) -m bench.cycles --out bench/out

clean:
	rm -rf $(VENV) build *.egg-info
