"""Build script: compiles the Cython backend; pyproject.toml holds the metadata.

``python -m pip install .`` (or ``-e .``) compiles
``fastgd/backends/_cython_kernels.pyx`` with optimisation on and Cython's
bounds checking and wraparound off, and with OpenMP where the compiler
compiles and links an OpenMP program (without it, the kernels' ``prange``
loops run on one thread: ``n_threads`` then changes nothing, results
included). ``FASTGD_CYTHON_DEBUG=1`` at build time gives a debug build
instead: checks on, ``-O0 -g``, OpenMP as in the release build.
``FASTGD_CYTHON_NATIVE=1`` adds ``-march=native`` to a release build: code
for this machine's CPU only (AVX2/AVX-512 where it has them, as Numba's JIT
does), which makes float32 kernels much faster but the binary unportable.

Without a working C compiler the build of the extension is skipped with a
warning and the pure-Python package still installs: ``backend="cython"`` then
raises an ImportError that says how to build it.
"""

import os
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("FASTGD_CYTHON_DEBUG", "") not in ("", "0")
NATIVE = os.environ.get("FASTGD_CYTHON_NATIVE", "") not in ("", "0")

# The floating-point freedoms the Numba kernels take (_numba.FASTMATH), as GCC
# and Clang flags: reassociation (vectorised reductions), contraction (FMA),
# reciprocals, no signed zeros, no errno from sqrt. Not -ffast-math: its
# -ffinite-math-only lets the compiler assume away NaN and inf.
FAST_FLAGS = [
    "-fno-signed-zeros",
    "-fno-trapping-math",
    "-fassociative-math",  # needs the two above
    "-freciprocal-math",
    "-ffp-contract=fast",
    "-fno-math-errno",
]
# GCC vectorises a reduction (the dot product of a row with the weights) into
# one vector accumulator: a chain of dependent adds as long as the row. These
# unroll it with four independent accumulators, as LLVM does for Numba. Kept
# only where the compiler accepts them (Clang rejects the GCC-only ones).
UNROLL_FLAGS = [
    "-funroll-loops",
    "-fvariable-expansion-in-unroller",
    "--param=max-variable-expansions-in-unroller=3",
]
# The threads of a large batch's gradient and of hogwild (cython.parallel).
OPENMP_FLAGS = {"unix": ["-fopenmp"], "msvc": ["/openmp"]}
OPENMP_PROBE = """\
#include <omp.h>
int main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }
"""
# Opt-in only: a wheel built so would crash on an older CPU (illegal instruction).
NATIVE_FLAGS = ["-march=native"] if NATIVE else []
COMPILE_ARGS = {
    "release": {"unix": ["-O3", *FAST_FLAGS, *UNROLL_FLAGS, *NATIVE_FLAGS], "msvc": ["/O2"]},
    "debug": {"unix": ["-O0", "-g"], "msvc": ["/Od", "/Zi"]},
}
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
}


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing, and picks flags per compiler."""

    def build_extensions(self):
        kind = "msvc" if self.compiler.compiler_type == "msvc" else "unix"
        flags = COMPILE_ARGS["debug" if DEBUG else "release"][kind]
        if kind == "unix":
            accepted = []
            for flag in flags:
                if self._accepts([*accepted, flag]):
                    accepted.append(flag)
            flags = accepted
        openmp = OPENMP_FLAGS[kind]
        if kind == "unix" and not self._accepts(openmp, source=OPENMP_PROBE, link=True):
            print(
                "WARNING: fastgd: the C compiler has no OpenMP (-fopenmp); the Cython "
                "backend is built without threads (n_threads changes nothing).",
                file=sys.stderr,
            )
            openmp = []
        for extension in self.extensions:
            # After Python's own CFLAGS (which carry -O3): a debug -O0 wins.
            extension.extra_compile_args = [*flags, *openmp]
            # The OpenMP runtime (libgomp, libomp) comes with the flag at link time.
            extension.extra_link_args = [] if kind == "msvc" else list(openmp)
        super().build_extensions()

    def _accepts(self, flags, source="int main(void) { return 0; }\n", link=False):
        """Whether the C compiler compiles ``source`` with ``flags``, warning-free.

        With ``link``, the object must also link into a program with ``flags``
        (a compiler can accept -fopenmp and still lack the runtime library).
        """
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "probe.c")
            with open(path, "w") as f:
                f.write(source)
            try:
                objects = self.compiler.compile(
                    [path], output_dir=tmp, extra_postargs=[*flags, "-Werror"]
                )
                if link:
                    self.compiler.link_executable(
                        objects, "probe", output_dir=tmp, extra_postargs=list(flags)
                    )
            except Exception:
                return False
        return True

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, missing headers, ...
            self._skip(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

    def _skip(self, exc):
        message = (
            f"fastgd: could not compile the Cython backend ({exc}). The package "
            "installs without it: backend='numba' and backend='numpy' work, "
            "backend='cython' does not. Install a C compiler and reinstall "
            "(`python -m pip install .`) to build it."
        )
        print(f"WARNING: {message}", file=sys.stderr)


def extensions():
    try:
        import numpy
        from Cython.Build import cythonize
    except ImportError as exc:  # only outside pip's isolated build environment
        print(f"WARNING: fastgd: building without the Cython backend ({exc}).", file=sys.stderr)
        return []
    extension = Extension(
        "fastgd.backends._cython_kernels",
        ["fastgd/backends/_cython_kernels.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[
            ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
            ("FASTGD_CYTHON_DEBUG", "1" if DEBUG else "0"),
        ],
    )
    # The generated C of each flavour in a folder of its own, out of the
    # source tree: a debug build never reuses release C, nor the reverse.
    build_dir = os.path.join("build", "cython-debug" if DEBUG else "cython")
    return cythonize([extension], compiler_directives=DIRECTIVES, build_dir=build_dir)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
