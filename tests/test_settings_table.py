"""The settings table (``fastgd._settings``) is the one list of settings.

The signatures, the docstrings, the README's table and the backends' records
are written out where users, scikit-learn and kernels read them; each test
here fails when one of them disagrees with the table.
"""

import inspect
import re
from pathlib import Path

import pytest

import fastgd
from fastgd._config import (
    ORDER_BATCHES,
    ORDER_SHUFFLED,
    SPARSE_DENSE,
    ExecutionConfig,
    KernelConfig,
)
from fastgd._schedule import (
    EPOCH_RATE_SETTINGS,
    SHARED_SETTINGS,
    UPDATE_EXPONENT_SETTINGS,
    UPDATE_OFFSET_SETTINGS,
    epoch_learning_rate,
    update_exponent,
    update_offset,
)
from fastgd._settings import (
    CONSUMERS,
    DASK_FIT,
    DERIVED_FIELDS,
    ENTRY_POINTS,
    EXECUTION,
    FIT,
    KERNEL,
    RECORD_CONSUMERS,
    ROWS,
    SCHEDULE,
    SETTINGS,
    check_settings,
    engine_settings,
    parameters_doc,
    readme_block,
    readme_table,
    table,
)
from fastgd._validation import check_fit_settings

README = Path(__file__).resolve().parents[1] / "README.md"

# The backends' records, field for field (docs/architecture.md, "The records":
# fixed names and order, which the Numba types and the Cython struct follow).
KERNEL_FIELDS = (
    "loss", "optimizer", "batch_size", "drop_last", "fit_intercept", "l2", "l1",
    "epsilon", "power_t", "t_offset", "momentum", "beta1", "beta2", "eps", "rho", "weight_decay",
    "intercept_drift",
    "average_start", "l1_cumulative",
)  # fmt: skip
EXECUTION_FIELDS = ("n_threads", "hogwild", "sparse_update", "row_order")

# Execution rows that no record field holds: the backend is the module the
# engine calls, not a number a backend reads; the Dask driver's strategy,
# rounds and client decide how blocks are scheduled, not what a kernel does.
CHOSEN_NOT_RECORDED = {"backend", "strategy", "rounds_per_epoch", "client"}

# The data arguments before each entry point's settings.
DATA = {FIT: ["X", "y", "sample_weight"], DASK_FIT: ["X", "y", "sample_weight"]}


def entry_point(entry):
    """The function whose signature and docstring ``entry`` stands for."""
    if entry == DASK_FIT:
        return pytest.importorskip("fastgd.dask").fit
    return fastgd.fit if entry == FIT else getattr(fastgd, entry)


def settings_parameters(entry):
    """``(name, default, kind)`` of every setting in ``entry``'s signature, in order."""
    if entry in DATA:
        parameters = list(inspect.signature(entry_point(entry)).parameters.values())
        assert [p.name for p in parameters[: len(DATA[entry])]] == DATA[entry]
        return [(p.name, p.default, p.kind) for p in parameters[len(DATA[entry]) :]]
    parameters = list(inspect.signature(entry_point(entry).__init__).parameters.values())
    assert parameters[0].name == "self"
    return [(p.name, p.default, p.kind) for p in parameters[1:]]


def parameters_section(docstring):
    """The text of a numpydoc docstring's Parameters section (its entries)."""
    start = docstring.index("    Parameters\n    ----------\n") + len("    Parameters\n    ----------\n")
    end = re.compile(r"^    \w[\w ]*\n    -+\n", re.MULTILINE).search(docstring, start)
    return docstring[start : end.start()].rstrip("\n") + "\n"


class Reads(dict):
    """A dict that remembers which keys were read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_signature_lists_the_tables_settings_in_order_with_their_defaults(entry):
    expected = [(row.name, row.default, inspect.Parameter.KEYWORD_ONLY)
                for row in table(entry).values()]  # fmt: skip
    assert settings_parameters(entry) == expected


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_docstring_parameters_section_is_the_tables(entry):
    section = parameters_section(entry_point(entry).__doc__)
    names = re.findall(r"^    (\w+) :", section, re.MULTILINE)
    data = DATA.get(entry, [])
    assert names == data + list(table(entry))
    # The settings' entries are the table's, word for word, after the data's.
    assert section.endswith(parameters_doc(entry))
    if entry == FIT:
        assert section.index("    loss :") == len(section) - len(parameters_doc(entry))


def test_readme_settings_table_is_the_tables():
    assert readme_block(README.read_text(encoding="utf-8")) == readme_table(), (
        "README.md's settings table is generated from fastgd/_settings.py: run "
        "python -c \"from fastgd._settings import write_readme; write_readme('README.md')\""
    )


def test_every_row_is_well_formed():
    assert len(ROWS) == len(SETTINGS)
    for row in SETTINGS:
        assert row.consumer in CONSUMERS, row.name
        assert set(row.entries) <= set(ENTRY_POINTS), row.name
        assert set(row.per_entry) <= set(row.entries), row.name


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_default_passes_its_own_check(entry):
    for row in table(entry).values():
        row.check(row.name, row.default)


def test_records_have_the_fields_the_backends_read():
    assert KernelConfig._fields == KERNEL_FIELDS
    assert ExecutionConfig._fields == EXECUTION_FIELDS


def test_records_are_built_from_the_consumer_column():
    recorded = set()
    # Every entry's settings as the engine reads them (the one-class SVM's
    # nu is read there only).
    for entry in ENTRY_POINTS:
        settings = engine_settings(entry, check_settings(entry, {}))
        for record, consumers in RECORD_CONSUMERS.items():
            own_consumer = consumers[0]
            for field in record._fields:
                if field in DERIVED_FIELDS:
                    values = Reads({**settings, "n_samples": 100})
                    DERIVED_FIELDS[field](values)
                    reads = values.read - {"n_samples"}
                else:
                    # A field of a row's own name: that row's encoded value.
                    row = ROWS[field]
                    assert row.encode is not None, field
                    assert row.consumer == own_consumer, field
                    reads = {field}
                for name in reads:
                    assert ROWS[name].consumer in consumers, (record.__name__, field, name)
                recorded |= reads
    # The records hold the whole of the kernel's arithmetic and of the
    # execution: a kernel or execution row that no field reads is lost.
    for row in SETTINGS:
        if row.consumer == KERNEL or (
            row.consumer == EXECUTION and row.name not in CHOSEN_NOT_RECORDED
        ):
            assert row.name in recorded, row.name
        if row.encode is not None:
            assert row.name in KernelConfig._fields + ExecutionConfig._fields, row.name


def test_schedule_rows_are_what_the_schedule_module_reads():
    schedule_rows = {row.name for row in SETTINGS if row.consumer == SCHEDULE}
    read = set(EPOCH_RATE_SETTINGS) | set(UPDATE_EXPONENT_SETTINGS) | set(UPDATE_OFFSET_SETTINGS)
    # What the schedule reads besides its own rows is another consumer's row.
    assert schedule_rows == read - set(SHARED_SETTINGS)
    assert all(ROWS[name].consumer == KERNEL for name in SHARED_SETTINGS)
    epoch_rate = [name for name in inspect.signature(epoch_learning_rate).parameters
                  if name != "epoch"]  # fmt: skip
    assert tuple(epoch_rate) == EPOCH_RATE_SETTINGS
    assert tuple(inspect.signature(update_exponent).parameters) == UPDATE_EXPONENT_SETTINGS
    assert tuple(inspect.signature(update_offset).parameters) == UPDATE_OFFSET_SETTINGS


def test_check_fit_settings_returns_what_is_computed_and_how_it_runs():
    cfg, run = check_fit_settings(
        n_samples=100, batch_size=None, schedule="invscaling", power_t=0.5,
        penalty="elasticnet", alpha=0.1, l1_ratio=0.25, optimizer="adam",
        parallel="hogwild", sparse_update="dense", shuffle="batches",
    )  # fmt: skip
    assert isinstance(cfg, KernelConfig) and isinstance(run, ExecutionConfig)
    assert cfg.batch_size == 100 and cfg.power_t == 0.5
    assert cfg.l2 == pytest.approx(0.075) and cfg.l1 == pytest.approx(0.025)
    assert (run.n_threads, run.hogwild, run.sparse_update, run.row_order) == (
        1, 1, SPARSE_DENSE, ORDER_BATCHES,
    )
    # Left out, a setting takes its default; the per-update exponent is
    # invscaling's alone.
    cfg, run = check_fit_settings(n_samples=10, power_t=0.5)
    assert cfg.batch_size == 10 and cfg.power_t == 0.0
    assert run.row_order == ORDER_SHUFFLED


def test_check_fit_settings_refuses_a_setting_fit_does_not_take():
    with pytest.raises(TypeError, match="unexpected keyword argument 'early_stopping'"):
        check_fit_settings(n_samples=10, early_stopping=True)
