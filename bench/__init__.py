"""Benchmarks and the demo: tools, not tests (see README, Performance).

Every bench checks its backends against the NumPy reference before it times
them (``_common.check_then_time``), and the CLIs spell the options they share
one way (``_common.FLAGS``: ``--n-samples``, ``--n-features``, ``--dtypes``,
``--batch-sizes``, ``--backends``, ``--epochs``, ``--repeats``, ``--no-peers``,
``--out``; a singular flag such as ``--backend`` takes one value).
"""
