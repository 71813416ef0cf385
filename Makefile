# Every target builds what it needs from scratch: a fresh clone needs only
# `make demo` or `make test` (Python >= 3.10 and a C compiler).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-kernels bench-speed clean

$(STAMP): pyproject.toml setup.py $(wildcard fastgd/backends/*.pyx)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m bench.demo

test: $(STAMP)
	$(PY) -m pytest tests

# Batch size against speed and convergence: table, bench/out/results.json and
# bench/out/scaling.png (the `test` extra holds the `bench` extra's packages).
bench: $(STAMP)
	$(PY) -m bench.scaling --out bench/out

# pytest-benchmark: each backend's epoch kernel beside the NumPy reference.
bench-kernels: $(STAMP)
	$(PY) -m pytest bench/ --benchmark-group-by=param

bench-speed: $(STAMP)
	$(PY) -m bench.engine_speed

clean:
	rm -rf $(VENV) build *.egg-info
