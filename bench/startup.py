"""Start-up time and memory of a fit (`make bench-startup`).

Each figure is measured in a fresh Python process, so nothing is already
imported or compiled:

- ``import fastgd``;
- ``import fastgd`` plus a first small ``fit`` (float64, Numba), with the
  Numba cache cold (an empty cache directory: everything compiles) and warm
  (the same directory again: everything loads);
- memory: the peak resident memory a fit adds on top of its X (float32,
  ``--memory-gb`` of it), for X in memory and for X an ``np.memmap`` of a
  file, whose pages the kernel maps as it reads them (not counted as the
  process's own memory: the anonymous part is what a copy would show in).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap

from ._common import machine_line

IMPORT = "import time; t = time.perf_counter(); import fastgd; print(time.perf_counter() - t)"

FIRST_FIT = textwrap.dedent("""
    import time
    t = time.perf_counter()
    import numpy as np, fastgd
    X = np.random.default_rng(0).normal(size=(1000, 8))
    fastgd.fit(X, X @ np.arange(8.0), epochs=1, backend="numba")
    print(time.perf_counter() - t)
""")

MEMORY = textwrap.dedent("""
    import resource, sys, numpy as np, fastgd
    n, d, path = int(sys.argv[1]), 64, sys.argv[2]

    def anonymous_kb():
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status)
        return int(fields["RssAnon"].split()[0])

    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, 1 << 20):
        chunk = X[start:start + (1 << 20)]
        chunk[...] = np.random.default_rng(start).standard_normal(chunk.shape, np.float32)
    X.flush(); del X
    y = np.ones(n, dtype=np.float32)
    fastgd.fit(np.zeros((64, d), np.float32), np.ones(64, np.float32), epochs=1)  # compile
    for kind in ("in memory", "np.memmap"):
        X = np.load(path, mmap_mode="r")
        if kind == "in memory":
            X = np.array(X)
        before_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        before_anon = anonymous_kb()
        fastgd.fit(X, y, epochs=1, batch_size=256, lr=1e-4, random_state=0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        grown = max(peak - before_peak, anonymous_kb() - before_anon) * 1024
        print(kind, X.nbytes, grown, sep="|")
        del X
""")


def run(code, *args, env=None):
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, check=True)  # fmt: skip
    return out.stdout.split("\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-gb", type=float, default=2.0,
                        help="size of the float32 X of the memory test (0: skip it)")  # fmt: skip
    args = parser.parse_args(argv)
    print(machine_line())

    imports = sorted(float(run(IMPORT)[0]) for _ in range(args.repeats))
    print(f"import fastgd: median {imports[len(imports) // 2]:.2f} s (of {args.repeats})")
    with tempfile.TemporaryDirectory() as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        cold = float(run(FIRST_FIT, env=env)[0])
        warm = sorted(float(run(FIRST_FIT, env=env)[0]) for _ in range(args.repeats))
    print(f"import + first fit, Numba cache cold: {cold:.2f} s")
    print(f"import + first fit, Numba cache warm: median {warm[len(warm) // 2]:.2f} s "
          f"(of {args.repeats})")  # fmt: skip

    if args.memory_gb > 0:
        n = int(args.memory_gb * 2**30 / (64 * 4))
        with tempfile.TemporaryDirectory() as folder:
            lines = run(MEMORY, str(n), os.path.join(folder, "X.npy"))
        for line in filter(None, lines):
            kind, nbytes, grown = line.split("|")
            nbytes, grown = int(nbytes), int(grown)
            print(f"fit on float32 X {kind} ({nbytes / 2**30:.2f} GiB): memory grew by "
                  f"{grown / 2**20:.0f} MiB = {grown / nbytes:.1%} of X")  # fmt: skip


if __name__ == "__main__":
    main()
