# Every target builds what it needs from scratch: a fresh clone needs only
# `make demo` or `make test` (Python >= 3.10 and a C compiler).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench-speed clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m bench.demo

test: $(STAMP)
	$(PY) -m pytest tests

bench-speed: $(STAMP)
	$(PY) -m bench.engine_speed

clean:
	rm -rf $(VENV) build *.egg-info
