"""Start-up time and memory of a fit (`make bench-startup`).

Each figure is measured in a fresh Python process, so nothing is already
imported or compiled:

- ``import fastgd``;
- ``import fastgd`` plus a first small ``fit`` (float64, Numba), with the
  Numba cache cold (an empty cache directory: everything compiles) and warm
  (the same directory again: everything loads);
- memory: the peak of the process's own (anonymous) memory during a fit,
  over its level before, on a float32 X of ``--memory-gb``: X in memory,
  and X an ``np.memmap`` of a file (whose pages are the file's, mapped as
  the kernel reads them; a copy of X would show as anonymous memory).
"""

import os
import subprocess
import sys
import tempfile
import textwrap

from ._common import add_flag, bench_parser, machine_line

IMPORT = "import time; t = time.perf_counter(); import fastgd; print(time.perf_counter() - t)"

FIRST_FIT = textwrap.dedent("""
    import time
    t = time.perf_counter()
    import numpy as np, fastgd
    X = np.random.default_rng(0).normal(size=(1000, 8))
    fastgd.fit(X, X @ np.arange(8.0), epochs=1, backend="numba")
    print(time.perf_counter() - t)
""")

WRITE_X = textwrap.dedent("""
    import sys, numpy as np
    n, path = int(sys.argv[1]), sys.argv[2]
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 64))
    for start in range(0, n, 1 << 20):
        chunk = X[start:start + (1 << 20)]
        chunk[...] = np.random.default_rng(start).standard_normal(chunk.shape, np.float32)
    X.flush()
""")

# Anonymous memory (the process's own, not a mapped file's pages) is sampled
# every millisecond during the fit; its peak over the level before the fit is
# what the fit allocated, a copy of X included, however briefly it lived.
MEMORY = textwrap.dedent("""
    import sys, threading, time, numpy as np, fastgd
    path, kind = sys.argv[1], sys.argv[2]

    def anonymous_bytes():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024

    X = np.load(path, mmap_mode="r")
    if kind == "in memory":
        X = np.array(X)
    y = np.ones(X.shape[0], dtype=np.float32)
    fastgd.fit(X[:64], y[:64], epochs=1)  # compiles (or loads) the kernels first
    before, peak, done = anonymous_bytes(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anonymous_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    fastgd.fit(X, y, epochs=1, batch_size=256, lr=1e-4, random_state=0)
    done.set()
    sampler.join()
    print(kind, X.nbytes, max(peak[0], anonymous_bytes()) - before, sep="|")
""")


def run(code, *args, env=None):
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, check=True)  # fmt: skip
    return out.stdout.split("\n")


def main(argv=None):
    parser = bench_parser(__doc__)
    add_flag(parser, "repeats", 3, help="fresh processes behind each median")
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
            path = os.path.join(folder, "X.npy")
            run(WRITE_X, str(n), path)
            for kind in ("in memory", "np.memmap"):
                kind, nbytes, grown = run(MEMORY, path, kind)[0].split("|")
                nbytes, grown = int(nbytes), int(grown)
                print(f"fit on float32 X {kind} ({nbytes / 2**30:.2f} GiB): its own memory "
                      f"grew by {grown / 2**20:.0f} MiB at the peak = {grown / nbytes:.1%} of X")  # fmt: skip


if __name__ == "__main__":
    main()
