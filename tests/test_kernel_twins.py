"""The Numba and Cython kernels are twins, and cannot drift apart unnoticed.

``fastgd/backends/_numba.py`` + ``_numba_sparse.py`` and
``fastgd/backends/_cython_kernels.pyx`` restate the same kernels for two
compilers. This test reads the three sources (it imports nothing from them,
so it runs without a compiled extension) and fails unless the functions the
two share have

- the same names, in the same order (the Numba files read in turn, dense
  then CSR, as the .pyx lays them out),
- the same parameters (names, in order),
- the same bodies once both are put in one normal form, and the same calls
  of the kernels' own functions,

except where ``DEVIATIONS`` says, function by function, which of those may
differ and why. A function defined in one file only must be listed in
``NUMBA_ONLY`` or ``CYTHON_ONLY``, with the reason. Every entry is checked
for staleness too: an entry whose difference has gone fails until it is
removed, so the lists only ever hold deviations that exist.

The normal form (``normal_body``) is Python's ``ast`` of each body without
its docstring. A Cython body is first made Python by ``cython_to_python``:
``cdef`` declarations dropped (an initialised one becomes an assignment),
casts ``<double>x`` dropped, the address-of ``&x`` marked (as ``~x``: the
kernels never use bitwise not). Then both sides go through the same
rewrites, each exact for the numbers the kernels handle:

- ``math.exp`` and the other ``math.`` names as libc's ``exp``; libc's ``NAN``
  as ``math.nan``; ``fabs`` as ``abs``; ``pow(a, b)`` as ``a ** b``; the
  casts ``int(x)`` and ``np.float64(x)`` (Numba's widening of a float32,
  as Cython's ``<double>x``) as ``x``;
- ``max(a, b)`` as Python defines it, ``b if b > a else a`` (which keeps a
  NaN where the Cython kernel spells it out so);
- ``a > b`` as ``b < a`` and ``a >= b`` as ``b <= a``;
- ``True``/``False`` as ``1``/``0`` (Cython's ``bint`` and byte flags);
- ``a, b = x, y`` as ``a = x`` then ``b = y`` where no target is read on
  the right;
- the address of a row's first element, ``&A[i, 0]``, as the row ``A[i]``
  (and ``&A[0]`` as ``A``); any other ``&x`` as ``x`` (an out-parameter);
- ``with nogil:`` as its body; ``prange``'s ``num_threads`` and
  ``schedule`` dropped (Numba's thread count is set by its caller);
- a final ``return 0`` of a Cython function declared ``except -1``
  dropped (it only tells "no error" apart from -1).

A difference that survives the normal form is a real one: it is either
drift (fix the kernel) or a deviation that must stay (list it, with why).
"""

import ast
import collections
import dataclasses
import difflib
import io
import pathlib
import re
import textwrap
import tokenize

import pytest

BACKENDS = pathlib.Path(__file__).resolve().parents[1] / "fastgd" / "backends"
NUMBA_FILES = ("_numba.py", "_numba_sparse.py")
CYTHON_FILE = "_cython_kernels.pyx"

# What a deviation may be about.
PARAMETERS, BODY, CALLS = "parameters", "body", "calls"
ASPECTS = (PARAMETERS, BODY, CALLS)


@dataclasses.dataclass(frozen=True)
class Deviation:
    """Which aspects of a shared function may differ between the twins, and why."""

    differs: frozenset
    why: str


def deviation(differs, why):
    return Deviation(frozenset(differs), why)


# Reasons that recur below.
POINTERS = (
    "the Cython kernel takes rows of P, G and state as pointers (slicing a memoryview "
    "without the GIL costs atomic reference counting, once per output and batch), so "
    "it passes their length, which Numba reads off the row view"
)
OUT_POINTER = (
    "Cython returns the loss and writes the derivative through a pointer to a local, "
    "where Numba returns the pair (both keep the two in registers)"
)
SPELLED_OUT_MAX = (
    "Cython spells Numba's max(x, 0.0) out as a conditional on a local, the way Python "
    "defines max, so a NaN loss stays NaN as in the Numba kernel"
)
SCAFFOLDING = (
    "thread and error scaffolding: Cython preallocates each chunk's z and g (`scratch`, "
    "where Numba allocates them inside prange), passes the thread count as an int "
    "(Numba: None or the count, which prunes the parallel branch at compile time), "
    "returns the update count through a pointer (its functions return one value "
    "with `except? -1`), and writes min() and range steps as C conditionals and while "
    "loops (a C loop needs a step of known sign)"
)

# Shared functions whose parameters, body or calls must differ, and why.
# Everything not named here is compared in full.
DEVIATIONS = {
    "prefetch_dense_row": deviation({BODY}, (
        "Numba's prefetch_to_l1/_l2 are intrinsics on (array, index); Cython's take a "
        "row's address and byte count (&X[i, 0], X.strides[0])"
    )),
    "epsilon_insensitive_loss": deviation({BODY}, SPELLED_OUT_MAX),
    "log_loss_and_derivative": deviation({PARAMETERS, BODY}, OUT_POINTER + "; " + SPELLED_OUT_MAX),
    "hinge_loss": deviation({BODY}, SPELLED_OUT_MAX),
    "loss_and_derivative": deviation({PARAMETERS, BODY}, OUT_POINTER),
    "outputs_loss_dloss": deviation({BODY}, OUT_POINTER),
    "weigh": deviation({BODY}, (
        "Numba's is an @overload on the type of sample_weight (None compiles to x itself, "
        "no test per row); Cython tests a NULL pointer"
    )),
    "sgd_step": deviation({PARAMETERS, BODY}, POINTERS),
    "update_output": deviation({PARAMETERS, BODY}, POINTERS),
    "apply_update": deviation({BODY}, POINTERS + " (sgd_step's d, update_output's n)"),
    "rows_gradient": deviation({BODY, CALLS}, (
        "float32's four-rows-at-a-time opening loop is Numba's rows_four_at_a_time, "
        "an @overload picked by X's dtype; Cython inlines it under `if floating is "
        "float:` (fused types compile it into the float32 kernel only). Cython also "
        "reads y[i] into a local before the row, where its debug build's bounds check "
        "can raise, and takes row pointers (" + POINTERS + ")"
    )),
    "add_chunks": deviation({BODY}, (
        "Numba selects `parts[c]` or `G + parts[c]` per element with a conditional in "
        "one loop (an array assignment would compile Numba's shape-mismatch message); "
        "Cython writes the two loops"
    )),
    "threaded_chunks": deviation({PARAMETERS, BODY}, SCAFFOLDING),
    "chunked_gradient": deviation({PARAMETERS, BODY}, SCAFFOLDING),
    "sgd_row_step": deviation({BODY}, OUT_POINTER + "; " + POINTERS),
    "run_batches": deviation({PARAMETERS, BODY}, SCAFFOLDING),
    "run_epoch": deviation({BODY, CALLS}, (
        "Numba's run_epoch is the Python-side dispatcher (thread count, then the "
        "compiled epoch_kernel); Cython's is the epoch itself: the struct copy of the "
        "config, the typed scratch arrays and the nogil call of run_batches"
    )),
    "run_epoch_hogwild": deviation({BODY, CALLS}, (
        "Numba's is the Python-side dispatcher to hogwild_kernel; Cython's is the "
        "kernel: the struct copy of the config, per-worker scratch, prange"
    )),
    "batch_gradient": deviation({BODY}, (
        "the struct copies of both records, typed scratch allocated up front (parts, "
        "losses and the threads' scratch, where Numba allocates them past the "
        "CHUNK_ROWS test), min() as a C conditional and the nogil block; chunked "
        "with one thread (Cython's 1 where Numba passes None)"
    )),
    "update_parameters": deviation({BODY}, "the struct copy of the config, then the same call"),
    "loss_dloss": deviation({BODY}, OUT_POINTER),
    "prefetch_ahead": deviation({BODY, CALLS}, (
        "Cython prefetches one cache line per element (prefetch_line_to_l1), where "
        "Numba's prefetch_to_l1 of an element asks for its first and last byte; and it "
        "returns order[r] for the caller to use, since GCC drops the calls of a "
        "function without a result that only reads memory"
    )),
    "touched_update": deviation({BODY}, (
        POINTERS + ": the gathered buffers go to update_output as &buf[0] and n + 1 "
        "where Numba slices buf[: n + 1]"
    )),
    "run_epoch_sparse": deviation({BODY}, (
        "the struct copy of the config, typed scratch (np.intp touched list, uint8 "
        "seen flags, storage-dtype buffers), the nogil block, min() as a C "
        "conditional, and prefetch_ahead returning the row (see there)"
    )),
    "batch_gradient_sparse": deviation({BODY}, (
        "the struct copy of the config, typed scratch (an empty np.intp touched list "
        "and uint8 seen flags; G returned as the array behind its memoryview) and the "
        "nogil block"
    )),
}

# Functions of the Numba files that the Cython kernel does not have.
NUMBA_ONLY = {
    "_jit": "the njit decorator with Numba's cache; Cython is compiled by setup.py",
    "_prefetch": (
        "builds the LLVM intrinsics prefetch_to_l1/_l2; Cython's are functions over a "
        "byte range (prefetch_to_l1, prefetch_to_l2, prefetch_lines)"
    ),
    "rows_four_at_a_time": (
        "float32's four-row opening loop as an @overload on X's dtype; Cython inlines it "
        "in rows_gradient under `if floating is float:`"
    ),
    "_rows_four_at_a_time_float32": "the float32 implementation of that overload",
    "_rows_four_at_a_time": "the @overload that picks it by X's dtype",
    "_weigh": "the @overload of weigh that picks by sample_weight's type (None or an array)",
    "epoch_kernel": (
        "the compiled epoch, called by the Python run_epoch; Cython's run_epoch is "
        "the compiled epoch itself"
    ),
    "hogwild_kernel": "the same for run_epoch_hogwild",
    "numba_threads": (
        "sets Numba's thread count around a call (a kernel that set it itself could "
        "not be cached); Cython passes num_threads to prange"
    ),
}

# Functions of the Cython kernel that the Numba files do not have.
CYTHON_ONLY = {
    "prefetch_lines": (
        "prefetch_to_l1/_l2's shared loop, with the level as a constant flag "
        "(__builtin_prefetch wants a constant); Numba generates both from _prefetch"
    ),
    "prefetch_to_l1": "in Numba an LLVM intrinsic made by _prefetch(3), not a def",
    "prefetch_to_l2": "in Numba an LLVM intrinsic made by _prefetch(2), not a def",
    "_struct_fields": "the C struct's field names, checked against KernelConfig at import",
    "_execution_fields": (
        "the C CpuExecution struct's field names, checked against _cpu.CpuExecution at "
        "import"
    ),
}


# --- reading the sources --------------------------------------------------------------


@dataclasses.dataclass
class Function:
    name: str
    parameters: list
    body: list  # ast statements, docstring removed
    where: str  # file:line
    cython: bool = False  # read from the .pyx
    except_minus_one: bool = False  # Cython: declared `except -1`


def strip_docstring(statements):
    if (statements and isinstance(statements[0], ast.Expr)
            and isinstance(statements[0].value, ast.Constant)
            and isinstance(statements[0].value.value, str)):  # fmt: skip
        return statements[1:]
    return statements


def numba_functions(source, filename):
    """The module-level ``def``s of a Numba file, in order."""
    functions = []
    for node in ast.parse(source, filename).body:
        if isinstance(node, ast.FunctionDef):
            args = node.args
            parameters = [a.arg for a in args.posonlyargs + args.args]
            parameters += [f"*{args.vararg.arg}"] if args.vararg else []
            parameters += [a.arg for a in args.kwonlyargs]
            parameters += [f"**{args.kwarg.arg}"] if args.kwarg else []
            functions.append(Function(node.name, parameters, strip_docstring(node.body),
                                      f"{filename}:{node.lineno}"))  # fmt: skip
    return functions


# A function at column 0: `def`, `cdef`/`cpdef` with a return type and a
# parameter list. `cdef extern`, `cdef struct`, `cpdef enum`, ... are not, nor
# is a module-level variable (`cdef double MIN_SCALE = 1e-9`).
FUNCTION_START = re.compile(
    r"^(?:def|cdef|cpdef)\s(?!\s*(?:extern|struct|union|enum|class|packed)\b)[^(=:#]*\("
)
# A C cast: `<double>x`, `<const char *>row`. A comparison `a < b` is
# written with spaces, so `<` followed by a name and `>` followed by an
# operand is a cast.
CAST = re.compile(r"<(?:const\s+)?(?:(?:unsigned|signed|long)\s+)*[A-Za-z_]\w*(?:\s*\*+)?>(?=[\w(&<])")
# The address-of operator: `&` directly before a name or a parenthesis (the
# binary `&` is written with spaces).
ADDRESS_OF = re.compile(r"&(?=[A-Za-z_(])")


def strip_comment(line):
    """``line`` without its ``#`` comment (a ``#`` inside a string literal stays)."""
    quote = None
    for at, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#":
            return line[:at].rstrip()
    return line


def split_top_level(text, separator):
    """``text`` split at each ``separator`` outside brackets and strings."""
    parts, depth, quote, start = [], 0, None, 0
    for at, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(separator, at):
            if separator == "=" and (text[at + 1 : at + 2] == "=" or at and text[at - 1] in "=!<>"):
                continue  # a comparison, not an assignment
            parts.append(text[start:at])
            start = at + len(separator)
    parts.append(text[start:])
    return parts


def declared_name(declaration):
    """The name in a C declaration: ``const floating[:, ::1] X`` -> ``X``, ``double *dloss`` -> ``dloss``."""
    without_brackets = re.sub(r"\[[^\]]*\]", " ", declaration)
    names = re.findall(r"[A-Za-z_]\w*", without_brackets)
    if not names:
        raise ValueError(f"no name in the declaration {declaration!r}")
    return names[-1]


def cython_to_python(body_lines, where):
    """A Cython function body as Python source (see the module docstring)."""
    lines = []
    for line in body_lines:
        stripped = line.lstrip()
        if stripped.startswith("cdef "):
            indent = line[: len(line) - len(stripped)]
            declaration = strip_comment(stripped[len("cdef "):])
            target, *value = split_top_level(declaration, "=")
            if not value:
                continue  # a declaration only: `cdef Py_ssize_t i, j`
            if len(value) > 1 or len(split_top_level(target, ",")) > 1:
                raise ValueError(f"{where}: cannot read the declaration {stripped!r}")
            line = f"{indent}{declared_name(target)} = {value[0].strip()}"
        lines.append(CAST.sub("", line))
    text = textwrap.dedent("\n".join(lines))
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    if any(token.type == tokenize.OP and token.string == "~" for token in tokens):
        raise ValueError(f"{where}: `~` in a Cython body (the normal form marks the address-of so)")
    return ADDRESS_OF.sub("~", text)


def cython_functions(source, filename=CYTHON_FILE):
    """The module-level functions of the .pyx (``def``, ``cdef``, ``cpdef``), in order."""
    lines = source.splitlines()
    functions = []
    at = 0
    while at < len(lines):
        if not FUNCTION_START.match(lines[at]):
            at += 1
            continue
        first = at
        # The signature runs until its parentheses close and it ends in ':'.
        signature = strip_comment(lines[at])
        while signature.count("(") > signature.count(")") or not signature.rstrip().endswith(":"):
            at += 1
            if at == len(lines):
                raise ValueError(f"{filename}:{first + 1}: unterminated signature")
            signature += " " + strip_comment(lines[at]).strip()
        at += 1
        head = signature.split("(", 1)[0]
        name = re.findall(r"[A-Za-z_]\w*", head)[-1]
        # The parameters: between the first '(' and its matching ')'.
        opening = signature.index("(")
        depth = 0
        for closing in range(opening, len(signature)):
            depth += {"(": 1, ")": -1}.get(signature[closing], 0)
            if depth == 0:
                break
        inside = signature[opening + 1 : closing]
        parameters = [declared_name(split_top_level(p, "=")[0])
                      for p in split_top_level(inside, ",") if p.strip()]  # fmt: skip
        tail = signature[closing + 1 :]
        # The body: every following line that is blank or indented.
        body_start = at
        while at < len(lines) and (not lines[at].strip() or lines[at][:1].isspace()):
            at += 1
        where = f"{filename}:{first + 1}"
        python = cython_to_python(lines[body_start:at], where)
        try:
            body = ast.parse(python, where).body
        except SyntaxError as exc:
            raise ValueError(f"{where}: the body of {name} does not read as Python once "
                             f"its declarations are stripped ({exc}):\n{python}") from exc  # fmt: skip
        except_minus_one = re.search(r"\bexcept\s+-1\b", tail) is not None
        functions.append(Function(name, parameters, strip_docstring(body), where, cython=True,
                                  except_minus_one=except_minus_one))  # fmt: skip
    return functions


# --- the normal form ------------------------------------------------------------------

# libc's names for Numba's: math.exp is exp, abs of a double is fabs.
SAME_NAME = {"fabs": "abs", "NAN": "nan"}


class Normalise(ast.NodeTransformer):
    """The rewrites of the module docstring, applied to both twins alike.

    ``cython``: the body is a Cython one, whose ``~`` marks the address-of
    (a Numba body's ``~`` is a bitwise not, and stays).
    """

    def __init__(self, cython):
        self.cython = cython

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if isinstance(node.value, ast.Name) and node.value.id == "math":
            return ast.copy_location(ast.Name(node.attr, ast.Load()), node)
        return node

    def visit_Name(self, node):
        node.id = SAME_NAME.get(node.id, node.id)
        return node

    def visit_Constant(self, node):
        if isinstance(node.value, bool):
            return ast.copy_location(ast.Constant(int(node.value)), node)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        name = node.func.id if isinstance(node.func, ast.Name) else None
        args = node.args
        if name == "pow" and len(args) == 2 and not node.keywords:
            return ast.copy_location(ast.BinOp(args[0], ast.Pow(), args[1]), node)
        widening = ast.unparse(node.func) == "np.float64"
        if (name == "int" or widening) and len(args) == 1 and not node.keywords:
            return args[0]
        if name == "max" and len(args) == 2 and not node.keywords:
            first, second = args
            test = ast.Compare(first, [ast.Lt()], [second])  # second > first
            return ast.copy_location(ast.IfExp(test, second, first), node)
        if name == "prange":
            node.keywords = [k for k in node.keywords if k.arg not in ("num_threads", "schedule")]
        return node

    def visit_Compare(self, node):
        self.generic_visit(node)
        if len(node.ops) == 1 and isinstance(node.ops[0], (ast.Gt, ast.GtE)):
            flipped = ast.Lt() if isinstance(node.ops[0], ast.Gt) else ast.LtE()
            return ast.copy_location(ast.Compare(node.comparators[0], [flipped], [node.left]), node)
        return node

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if not (self.cython and isinstance(node.op, ast.Invert)):
            return node
        operand = node.operand
        if isinstance(operand, ast.Subscript):
            index = operand.slice
            if isinstance(index, ast.Tuple) and _is_zero(index.elts[-1]):
                rest = index.elts[:-1]
                row = rest[0] if len(rest) == 1 else ast.Tuple(rest, ast.Load())
                return ast.copy_location(ast.Subscript(operand.value, row, ast.Load()), node)
            if _is_zero(index):
                return operand.value
        return operand

    def visit_With(self, node):
        self.generic_visit(node)
        if (len(node.items) == 1 and isinstance(node.items[0].context_expr, ast.Name)
                and node.items[0].context_expr.id == "nogil"):  # fmt: skip
            return node.body
        return node

    def visit_Assign(self, node):
        self.generic_visit(node)
        if (len(node.targets) == 1 and isinstance(node.targets[0], ast.Tuple)
                and isinstance(node.value, ast.Tuple)
                and len(node.targets[0].elts) == len(node.value.elts)):  # fmt: skip
            targets = {ast.unparse(t) for t in node.targets[0].elts}
            read = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
            if not targets & read:
                return [ast.copy_location(ast.Assign([t], v), node)
                        for t, v in zip(node.targets[0].elts, node.value.elts)]  # fmt: skip
        return node


def _is_zero(node):
    return isinstance(node, ast.Constant) and node.value == 0 and not isinstance(node.value, bool)


def normal_body(function):
    """The function's body in the normal form, as source text."""
    # Each statement re-read from its text first: the rewrites work in place,
    # and the function's own tree must stay as it was read.
    normalise = Normalise(cython=function.cython)
    module = ast.Module([normalise.visit(ast.parse(ast.unparse(s)).body[0])
                         for s in function.body], [])  # fmt: skip
    body = []
    for statement in module.body:
        body.extend(statement if isinstance(statement, list) else [statement])
    if (function.except_minus_one and body and isinstance(body[-1], ast.Return)
            and _is_zero(body[-1].value)):  # fmt: skip
        body = body[:-1]
    module = ast.fix_missing_locations(ast.Module(body, []))
    return ast.unparse(module)


def calls(function, names):
    """How often the function calls each of ``names`` (the kernels' own functions)."""
    tree = ast.parse(normal_body(function))
    return collections.Counter(
        node.func.id for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names
    )  # fmt: skip


# --- the comparison -------------------------------------------------------------------


def read_sources():
    numba = {name: (BACKENDS / name).read_text() for name in NUMBA_FILES}
    return numba, (BACKENDS / CYTHON_FILE).read_text()


def twin_problems(numba_sources, cython_source, deviations=DEVIATIONS, numba_only=NUMBA_ONLY,
                  cython_only=CYTHON_ONLY):  # fmt: skip
    """Every way the twins differ beyond what the lists allow; empty when they agree."""
    problems = []
    numba = [f for name, text in numba_sources.items() for f in numba_functions(text, name)]
    cython = cython_functions(cython_source)
    for side, functions in (("the Numba files", numba), (CYTHON_FILE, cython)):
        counts = collections.Counter(f.name for f in functions)
        problems += [f"{name}: defined {n} times in {side}" for name, n in counts.items() if n > 1]
    by_name = {"numba": {f.name: f for f in numba}, "cython": {f.name: f for f in cython}}
    shared = [f.name for f in numba if f.name in by_name["cython"]]

    # Functions in one file only: listed, with a reason, and really only there.
    for side, other, listed, label in (
        ("numba", "cython", numba_only, "NUMBA_ONLY"),
        ("cython", "numba", cython_only, "CYTHON_ONLY"),
    ):
        for name, function in by_name[side].items():
            if name not in by_name[other] and name not in listed:
                problems.append(f"{name} ({function.where}): only in the {side} kernel; add its "
                                f"twin, or list it in {label} with why")  # fmt: skip
        for name, why in listed.items():
            if name not in by_name[side]:
                problems.append(f"{name}: listed in {label} but not defined in the {side} kernel")
            elif name in by_name[other]:
                problems.append(f"{name}: listed in {label} but defined in both kernels")
            if not (isinstance(why, str) and why.strip()):
                problems.append(f"{name}: its {label} entry gives no reason")

    # The same order: the shared names must be one sequence in both.
    cython_order = [f.name for f in cython if f.name in by_name["numba"]]
    if shared != cython_order:
        matcher = difflib.SequenceMatcher(a=shared, b=cython_order, autojunk=False)
        in_sequence = {shared[block.a + k] for block in matcher.get_matching_blocks()
                       for k in range(block.size)}  # fmt: skip
        for name in shared:
            if name not in in_sequence:
                n_at, c_at = shared.index(name), cython_order.index(name)
                problems.append(
                    f"{name}: out of order: in the Numba files after "
                    f"{shared[n_at - 1] if n_at else '(start)'}, in {CYTHON_FILE} after "
                    f"{cython_order[c_at - 1] if c_at else '(start)'}"
                )

    own_names = set(by_name["numba"]) | set(by_name["cython"])
    for name in deviations:
        if name not in shared:
            problems.append(f"{name}: listed in DEVIATIONS but not a function of both kernels")
    for name in shared:
        n, c = by_name["numba"][name], by_name["cython"][name]
        allowed = deviations.get(name, Deviation(frozenset(), ""))
        if name in deviations:
            if not allowed.why.strip():
                problems.append(f"{name}: its DEVIATIONS entry gives no reason")
            unknown = set(allowed.differs) - set(ASPECTS)
            if unknown:
                problems.append(f"{name}: DEVIATIONS names unknown aspects {sorted(unknown)}")
        n_body, c_body = normal_body(n), normal_body(c)
        differences = {
            PARAMETERS: (n.parameters != c.parameters,
                         f"Numba ({n.where}) {n.parameters}, Cython ({c.where}) {c.parameters}"),
            BODY: (n_body != c_body, "\n".join(difflib.unified_diff(
                n_body.splitlines(), c_body.splitlines(), f"numba {n.where}", f"cython {c.where}",
                lineterm=""))),
            CALLS: (calls(n, own_names) != calls(c, own_names),
                    f"Numba {dict(sorted(calls(n, own_names).items()))}, "
                    f"Cython {dict(sorted(calls(c, own_names).items()))}"),
        }  # fmt: skip
        for aspect, (differs, detail) in differences.items():
            what = {BODY: "bodies"}.get(aspect, aspect)
            if differs and aspect not in allowed.differs:
                problems.append(f"{name}: the {what} differ:\n{textwrap.indent(detail, '    ')}")
            elif not differs and aspect in allowed.differs:
                problems.append(f"{name}: the {what} now agree; remove {aspect} from its "
                                "DEVIATIONS entry")  # fmt: skip
    return problems


# --- the tests ------------------------------------------------------------------------


def test_numba_and_cython_kernels_are_twins():
    problems = twin_problems(*read_sources())
    assert not problems, "the Numba and Cython kernels drifted apart:\n" + "\n".join(problems)


def test_the_cython_reader_finds_what_cythons_parser_finds():
    """The hand-written reader of the .pyx agrees with Cython's own parser on every function."""
    pytest.importorskip("Cython")
    from Cython.Compiler import Nodes
    from Cython.Compiler.TreeFragment import parse_from_strings

    source = read_sources()[1]
    expected = []
    for node in parse_from_strings("fastgd.backends._cython_kernels", source).body.stats:
        if isinstance(node, Nodes.CFuncDefNode):
            declarator = node.declarator
            while not isinstance(declarator, Nodes.CFuncDeclaratorNode):
                declarator = declarator.base
            name = declarator.base
            while getattr(name, "name", None) is None:
                name = name.base
            parameters = []
            for arg in declarator.args:
                inner = arg.declarator
                while getattr(inner, "name", None) is None:
                    inner = inner.base
                parameters.append(inner.name or arg.base_type.name)
            expected.append((name.name, parameters))
        elif isinstance(node, Nodes.DefNode):
            expected.append((node.name, [a.declarator.name or a.base_type.name for a in node.args]))
    assert [(f.name, f.parameters) for f in cython_functions(source)] == expected


def test_the_normal_form_strips_what_only_the_compiler_needs():
    """A small Cython function and its Numba twin read the same once normalised."""
    cython = '''
cdef inline double f(const floating[:, ::1] X, Py_ssize_t i, double *out, long long t) noexcept nogil:
    """doc"""
    cdef Py_ssize_t j
    cdef double acc = 0.0
    cdef double top = X[i, 0]
    out[0] = fabs(<double>X[i, 0])
    g(&X[i, 0], &out[0], pow(acc, <double>t))
    top = X[i, 1] if X[i, 1] > top else top
    acc, top = top, 1.0
    flags[j] = True
    return exp(acc) + top
'''
    numba = '''
def f(X, i, out, t):
    """doc"""
    acc = 0.0
    top = X[i, 0]
    out[0] = abs(X[i, 0])
    g(X[i], out, acc**t)
    top = max(top, X[i, 1])
    acc, top = top, 1.0
    flags[j] = 1
    return math.exp(acc) + top
'''
    (c,) = cython_functions(cython)
    (n,) = numba_functions(numba, "numba.py")
    assert c.parameters == n.parameters == ["X", "i", "out", "t"]
    assert normal_body(c) == normal_body(n)
    # acc, top = top, 1.0 reads a target on the right: kept as one statement.
    assert "acc, top = (top, 1.0)" in normal_body(c)


def _replace_once(text, old, new):
    assert text.count(old) == 1, f"the drift fixture no longer finds {old!r}"
    return text.replace(old, new)


def _pyx_function(source, name):
    """The match of the .pyx function ``name``, from its signature to the next top-level line."""
    match = re.search(rf"^c?p?def [^\n]*\b{name}\(.*?(?=^\S)", source, re.S | re.M)
    assert match, f"the drift fixture no longer finds {name} in {CYTHON_FILE}"
    return match


def _replace_in_function(source, name, old, new):
    match = _pyx_function(source, name)
    return source[: match.start()] + _replace_once(match.group(0), old, new) + source[match.end() :]


def _swap_functions(source, first, second):
    """``source`` with the .pyx functions ``first`` and ``second`` (adjacent, in that order) swapped."""
    a, b = _pyx_function(source, first), _pyx_function(source, second)
    assert a.end() == b.start(), "the drift fixture expects adjacent functions"
    return source[: a.start()] + b.group(0) + a.group(0) + source[b.end() :]


DRIFTS = {
    # A changed operator in a body compared in full.
    "operator": (
        CYTHON_FILE,
        lambda s: _replace_in_function(s, "adam_update", "m[j] = beta1 * m[j] + (1.0 - beta1) * g[j]",
                                       "m[j] = beta1 * m[j] - (1.0 - beta1) * g[j]"),
        ["adam_update: the bodies differ"],
    ),
    # A changed constant.
    "constant": (
        "_numba.py",
        lambda s: _replace_once(s, "    return epsilon * r - 0.5 * epsilon * epsilon\n",
                                "    return epsilon * r - 0.25 * epsilon * epsilon\n"),
        ["huber_loss: the bodies differ"],
    ),
    # A renamed parameter.
    "renamed parameter": (
        "_numba.py",
        lambda s: _replace_once(s, "def soft_threshold(w, threshold):", "def soft_threshold(w, shrink):"),
        ["soft_threshold: the parameters differ"],
    ),
    # Two parameters swapped.
    "swapped parameters": (
        CYTHON_FILE,
        lambda s: _replace_once(s, "row_score(const floating[:, ::1] X, Py_ssize_t i, const floating *p)",
                                "row_score(Py_ssize_t i, const floating[:, ::1] X, const floating *p)"),
        ["row_score: the parameters differ"],
    ),
    # Two functions swapped.
    "swapped functions": (
        CYTHON_FILE,
        lambda s: _swap_functions(s, "hinge_loss", "hinge_dloss"),
        ["out of order"],
    ),
    # A call dropped from a function whose body may differ (its calls may not).
    "dropped call": (
        CYTHON_FILE,
        lambda s: _replace_in_function(s, "update_output", "p[j] = soft_threshold(p[j], shrink)",
                                       "p[j] = p[j] - shrink"),
        ["update_output: the calls differ"],
    ),
    # A new function in one kernel only.
    "one-sided function": (
        "_numba_sparse.py",
        lambda s: s + "\n\ndef batch_hessian(X, y, rows, P, cfg):\n    return 0.0, P\n",
        ["batch_hessian", "only in the numba kernel"],
    ),
}


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_a_drifted_twin_is_reported(drift):
    filename, change, expected = DRIFTS[drift]
    numba, cython = read_sources()
    if filename == CYTHON_FILE:
        cython = change(cython)
    else:
        numba = {**numba, filename: change(numba[filename])}
    report = "\n".join(twin_problems(numba, cython))
    for words in expected:
        assert words in report, f"{drift}: expected {words!r} in the report:\n{report}"


def test_a_stale_allow_list_entry_is_reported():
    numba, cython = read_sources()
    deviations = {**DEVIATIONS, "row_score": deviation({BODY}, "no longer true")}
    numba_only = {**NUMBA_ONLY, "row_score": "not true either"}
    report = "\n".join(twin_problems(numba, cython, deviations, numba_only))
    assert "row_score: the bodies now agree" in report
    assert "row_score: listed in NUMBA_ONLY but defined in both kernels" in report
