"""Kernel side of the hidden tests: record values as plain JSON data for the grader to judge.

Nothing here decides a grade. A hidden test calls the student's functions and records what they
return; the grader compares those records with the reference run in its own process.

At grading, the test cells run in a scope of their own (`run_test`), not in the student's
globals: the names a test assigns (`odd`, `x`, `record`, ...) never overwrite the student's,
and the tests use the data and modules as the setup cells defined them (`watch_setup`), not as
the student's exploration left them. `dlcourse.grader.execute.SandboxedExecute` has the kernel
run each test and setup cell that way (`test_cell_code`, `setup_cell_code`), the reference run
and every submission alike; the notebook keeps the cells' own source.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import itertools
import json
import linecache
import math
import sys
from collections.abc import Callable, Iterator
from typing import Any

MIME = "application/vnd.dlcourse.probe+json"
MAX_ELEMENTS = 1_000_000
MAX_DEPTH = 20
# The builtins as they were when this module was imported (the first setup cell imports it,
# before any answer runs): the tests resolve `isinstance`, `type`, ... here, so neither a
# student's global named `isinstance` nor a patched `builtins` module decides a check.
_BUILTINS: dict[str, Any] = dict(vars(builtins))
_type = type
_TAGS = ("__float__", "__ndarray__", "__repr__", "__error__", "__dict__")
_ARRAY_KINDS = "biuf?US"


class _TooLarge(Exception):
    pass


def encode(value: Any) -> Any:
    """`value` as JSON-able data (strict JSON: no NaN literals, string keys only)."""
    try:
        return _encode(value, 0, [MAX_ELEMENTS])
    except _TooLarge:
        return {"__error__": "too large"}
    except Exception as exc:  # a hostile or broken __array__ / .numpy()
        return {"__error__": f"could not encode: {_describe(exc)}"}


def _encode(value: Any, depth: int, budget: list[int]) -> Any:
    if depth > MAX_DEPTH:
        raise _TooLarge
    _spend(budget, 1)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, (list, tuple)):
        return [_encode(item, depth + 1, budget) for item in value]
    if isinstance(value, dict):
        return _encode_dict(value, depth, budget)
    np = _numpy()
    if np is not None and isinstance(value, np.generic):
        return _encode_numpy_scalar(value, depth, budget)
    if _array_like(value):
        return _encode_array(value, budget)
    return {"__repr__": type(value).__name__}


def _spend(budget: list[int], n: int) -> None:
    budget[0] -= n
    if budget[0] < 0:
        raise _TooLarge


def _float(x: float) -> Any:
    if math.isnan(x):
        return {"__float__": "nan"}
    if math.isinf(x):
        return {"__float__": "inf" if x > 0 else "-inf"}
    return float(x)


def _encode_dict(value: dict, depth: int, budget: list[int]) -> Any:
    if not all(isinstance(k, str) for k in value):
        return {"__repr__": type(value).__name__}
    out = {k: _encode(v, depth + 1, budget) for k, v in value.items()}
    if len(out) == 1 and next(iter(out)) in _TAGS:
        return {"__dict__": out}  # a real dict that looks like a tag
    return out


def _encode_numpy_scalar(value: Any, depth: int, budget: list[int]) -> Any:
    if value.dtype.kind in "biuf?US":
        return _encode(value.item(), depth, budget)
    return {"__repr__": type(value).__name__}


def _array_like(value: Any) -> bool:
    return any(hasattr(value, a) for a in ("numpy", "__array__", "__array_interface__"))


def _encode_array(value: Any, budget: list[int]) -> Any:
    import numpy as np

    size = getattr(value, "size", None)
    if isinstance(size, int) and size > budget[0]:
        raise _TooLarge
    if callable(getattr(value, "numpy", None)):
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in _ARRAY_KINDS:
        return {"__repr__": f"ndarray[{arr.dtype}]"}
    _spend(budget, int(arr.size))
    data = arr.ravel().tolist()
    if arr.dtype.kind == "f":
        data = [_float(x) for x in data]
    return {"__ndarray__": {"dtype": str(arr.dtype), "shape": list(arr.shape), "data": data}}


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _emit(payload: dict) -> None:
    from IPython.display import display

    display({MIME: payload}, raw=True)


def record(
    key: str,
    value: Any,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    hint: str = "",
    dtype: bool = False,
    weight: float = 1.0,
    kind: str = "match",
    params: dict[str, Any] | None = None,
) -> None:
    """Send `value` to the grader under `key`. Everything but the value counts only in the
    reference run: the tolerances; `weight`, this check's share of the cell's points against
    the cell's other checks (default 1: an equal split); `kind`, how the grader turns the
    value into a credit between 0 and 1 (`dlcourse.grader.verdict.CREDIT_KINDS`; "match":
    1 when it matches the reference's value, else 0; "method": the same, but a failure
    scores the whole cell 0, as a broken method rule does: for checks of the method by
    behaviour, such as `call_with_autodiff_altered`), and `params`, that kind's settings
    (plain JSON data)."""
    _emit(_payload(key, encode(value), rtol, atol, hint, dtype, weight, kind, params))


def record_call(
    key: str,
    fn: Callable[..., Any],
    /,
    *args: Any,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    hint: str = "",
    dtype: bool = False,
    weight: float = 1.0,
    kind: str = "match",
    params: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Like record(key, fn(*args, **kwargs)), but an exception is recorded instead of raised."""
    try:
        encoded = encode(fn(*args, **kwargs))
    except Exception as exc:
        encoded = {"__error__": _describe(exc)}
    _emit(_payload(key, encoded, rtol, atol, hint, dtype, weight, kind, params))


def _payload(
    key: str,
    encoded: Any,
    rtol: float,
    atol: float,
    hint: str,
    dtype: bool,
    weight: float = 1.0,
    kind: str = "match",
    params: dict[str, Any] | None = None,
) -> dict:
    return {
        "key": str(key),
        "value": encoded,
        "rtol": float(rtol),
        "atol": float(atol),
        "hint": str(hint),
        "dtype": bool(dtype),
        "weight": float(weight),
        "kind": str(kind),
        "params": json.loads(json.dumps(dict(params or {}), allow_nan=False)),
    }


# --- type checks decided here, not by the student's objects ---------------------------------

# TensorFlow's own classes, kept when a setup cell has run (`watch_setup`), before any answer
# could rebind `tf.Tensor` or patch a module; taken at first use where no setup cell ran.
_real_types: dict[str, Any] = {}


def _keep_real_types() -> dict[str, Any]:
    if _real_types:
        return _real_types
    ops = sys.modules.get("tensorflow.python.framework.ops")
    functions = sys.modules.get("tensorflow.python.eager.polymorphic_function.polymorphic_function")
    if ops is None:
        return _real_types
    tensors = (getattr(ops, "EagerTensor", None), getattr(ops, "SymbolicTensor", None))
    _real_types["tensors"] = tuple(c for c in tensors if _type(c) is _type)
    _real_types["function"] = getattr(functions, "Function", None)
    return _real_types


def is_tensor(value: Any) -> bool:
    """Whether `value` is a TensorFlow tensor: its own type (`type(value)`, which neither a
    `__class__` property, a metaclass nor a virtual subclass changes) is one of TensorFlow's
    tensor classes, compared by identity. A NumPy array, or any object claiming to be a
    tensor, is not."""
    kind = _type(value)
    return any(kind is real for real in _keep_real_types().get("tensors", ()))


# Classes a hidden test asks about by name (`is_a`), kept from the modules that define them the
# first time each is found imported (after every setup cell, and at first use), so that neither
# a rebound `np.ndarray` nor a patched `keras.Model` later decides a check.
_CLASS_HOMES = {
    "ndarray": ("numpy", "ndarray"),
    "keras.Model": ("keras.src.models.model", "Model"),
}
_real_classes: dict[str, Any] = {"dict": dict, "list": list, "tuple": tuple}  # as imported


def _keep_real_classes() -> dict[str, Any]:
    for kind, (module, name) in _CLASS_HOMES.items():
        if kind not in _real_classes:
            cls = getattr(sys.modules.get(module), name, None)
            if _type(cls) is _type:
                _real_classes[kind] = cls
    return _real_classes


def is_a(value: Any, kind: str) -> bool:
    """Whether `value` is an instance of the real class `kind` ("ndarray", "keras.Model",
    "dict", "list", "tuple") or of a class derived from it, judged by `value`'s own type and
    that type's own method resolution order: neither a `__class__` property, a metaclass's
    `__instancecheck__`/`__subclasscheck__`/`__mro__`, a registered virtual subclass nor a
    shadowed `isinstance` changes the answer. An unknown kind is an error in the test."""
    real = _keep_real_classes().get(kind)
    if real is None and kind not in _CLASS_HOMES:
        raise ValueError(f"is_a: unknown kind {kind!r}")
    return real is not None and real in _MRO.__get__(_type(value))


_MRO = vars(type)["__mro__"]  # the type's own MRO slot, not a metaclass's __mro__


def tracing_count(fn: Any) -> int | None:
    """How many times `fn`, a `tf.function`, has traced, asked of TensorFlow's own `Function`
    class rather than of `fn` (whose method or attribute may report anything); None when `fn`
    is not exactly a `tf.function`."""
    real = _keep_real_types().get("function")
    if real is None or _type(fn) is not real:
        return None
    try:
        return int(real.experimental_get_tracing_count(fn))
    except Exception:  # noqa: BLE001 - a broken function object: no count
        return None


def method(*, uses: tuple[str, ...] = (), forbids: tuple[str, ...] = (), hint: str = "") -> None:
    """State the exercise's method rule; the grader checks it against the answer's source."""
    _emit({"key": "__method__", "uses": list(uses), "forbids": list(forbids), "hint": str(hint)})


# --- method rules checked by behaviour ---------------------------------------------------------

# What `autodiff_altered` multiplies every gradient by: a sign change that Adam's scaling does
# not undo, and a factor that a norm does not undo.
AUTODIFF_FACTOR = -2.0


@contextlib.contextmanager
def autodiff_altered() -> Iterator[None]:
    """Inside, TensorFlow's reverse-mode autodiff answers with AUTODIFF_FACTOR times the true
    gradient: `GradientTape.gradient` (and through it `jacobian` and `batch_jacobian`) and
    `tf.gradients` under any name. A test records what an answer computes inside and outside:
    an answer whose result comes from the tape changes with it, one that computes the same
    numbers by hand (or with a tape it then ignores) does not. `tf.function`s run eagerly
    inside, so that one traced before still asks the (altered) tape."""
    import tensorflow as tf
    from tensorflow.python.ops import gradients_util

    tape_gradient = tf.GradientTape.gradient
    helper = gradients_util._GradientsHelper
    eager = tf.config.functions_run_eagerly()

    def scaled(result: Any) -> Any:
        return tf.nest.map_structure(lambda g: None if g is None else g * AUTODIFF_FACTOR, result)

    def gradient(self: Any, *args: Any, **kwargs: Any) -> Any:
        return scaled(tape_gradient(self, *args, **kwargs))

    def gradients_helper(*args: Any, **kwargs: Any) -> Any:
        return scaled(helper(*args, **kwargs))

    tf.GradientTape.gradient = gradient
    gradients_util._GradientsHelper = gradients_helper
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.GradientTape.gradient = tape_gradient
        gradients_util._GradientsHelper = helper
        tf.config.run_functions_eagerly(eager)


def call_with_autodiff_altered(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) inside `autodiff_altered`."""
    with autodiff_altered():
        return fn(*args, **kwargs)


# --- the tests' own scope ---------------------------------------------------------------------

# Kept in this module, not in the student's globals: what the setup cells defined, as they
# defined it, and what the test cells run so far defined.
setup_values: dict[str, Any] = {}
test_values: dict[str, Any] = {}
_TEST_CELLS = itertools.count(1)
_student: dict[str, Any] | None = None  # the globals `run_test` was called from


def student_namespace() -> dict[str, Any]:
    """The student's globals, for a test that must put reference helpers where the student's
    own functions look them up (and put the student's back afterwards). Outside `run_test`
    (a notebook run cell by cell), the caller's globals are the student's."""
    return _student if _student is not None else sys._getframe(1).f_globals


_CALL = "__import__('dlcourse.probe').probe."


def test_cell_code(source: str) -> str:
    """What the kernel runs for a test cell: its source, through `run_test`."""
    return f"{_CALL}run_test({source!r})"


def setup_cell_code(source: str) -> str:
    """What the kernel runs for a setup cell: its source, after a line that keeps what it
    defines for the tests (`watch_setup`). A cell magic or a __future__ import must come first:
    such a cell runs as written, and the tests see its names as the student's globals hold them."""
    if source.lstrip().startswith("%%") or "__future__" in source:
        return source
    return f"{_CALL}watch_setup()\n{source}"


def watch_setup() -> None:
    """Called first in a setup cell: once the cell has run, every global it defined or rebound
    is kept in `setup_values`, NumPy arrays and plain containers as copies (a student's
    exploration later may change them in place), modules and everything else as they are."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    user = sys._getframe(1).f_globals
    before = dict(user)

    def keep(*_: Any) -> None:
        shell.events.unregister("post_run_cell", keep)
        _keep_real_types()
        _keep_real_classes()
        for name, value in list(user.items()):
            if name.startswith("_") or name in shell.user_ns_hidden:
                continue
            if name not in before or before[name] is not value:
                setup_values[name] = _pristine(value)

    shell.events.register("post_run_cell", keep)


def _pristine(value: Any) -> Any:
    np = _numpy()
    try:
        if np is not None and isinstance(value, np.ndarray):
            return value.copy()
        if type(value) in (list, dict, set):
            return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - out of memory, an uncopyable item: kept as it is
        pass
    return value


def run_test(source: str) -> None:
    """Run a test cell's source (visible and hidden parts) in a scope of its own: the caller's
    (the student's) globals, where the functions under test are, overlaid by `setup_values`,
    then by `test_values`, with the real builtins: a student's global named like a builtin
    (`isinstance`, `type`, ...) is not seen here. What it assigns goes to `test_values`, never
    to the student's globals. As in IPython, the value of a last expression is displayed."""
    global _student
    _restore()
    user = _student = sys._getframe(1).f_globals
    own = {k: v for k, v in user.items() if k.startswith("__") or k not in _BUILTINS}
    scope = {**own, **setup_values, **test_values, "__builtins__": _BUILTINS}
    before = dict(scope)
    try:
        _run_cell(source, scope)
    finally:
        test_values.update(
            (name, value)
            for name, value in scope.items()
            if name not in before or before[name] is not value
        )


def _run_cell(source: str, scope: dict[str, Any]) -> None:
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(source)  # IPython's syntax, not the shell's hooks
    filename = f"<test cell {next(_TEST_CELLS)}>"
    # Registered as IPython registers a cell: inspect (tf.function's AutoGraph) reads it here.
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    tree = ast.parse(code, filename)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, filename, "exec"), scope)
    if last is not None:
        exec(compile(ast.Interactive([last]), filename, "single"), scope)


# --- loaded at kernel start, before any cell ----------------------------------------------------

# What a grading kernel runs before its first cell (`IPKernelApp.exec_lines`, added to the kernel's
# command by `dlcourse.grader.sandbox.SandboxedKernelManager`, whichever door starts it): this
# module, NumPy, TensorFlow and Keras are imported and the real builtins and classes kept before
# any cell, a student's cell above the setup cell included, could rebind or patch them.
KERNEL_START = "__import__('dlcourse.probe').probe.kernel_start()"
_KERNEL_START_IMPORTS = ("numpy", "tensorflow", "keras")
_self = sys.modules[__name__]
_own: dict[str, Any] = {}  # this module's names at kernel start
_own_tables: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (table, its entries then)
_RUN_STATE = frozenset({"setup_values", "test_values", "_TEST_CELLS", "_student"})


class _ReadOnlyModule(type(sys)):
    """This module in a grading kernel: an answer cannot rebind its functions by assignment."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self.__name__} is read-only in a grading kernel")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self.__name__} is read-only in a grading kernel")


def kernel_start() -> None:
    """Import what the tests check against and keep it as it is now, before any cell runs;
    from then on `run_test` puts this module's functions and tables back as they were here
    before each test cell (an answer that patched them, by any route that reaches this
    module's namespace, changes nothing the tests see)."""
    import importlib

    for name in _KERNEL_START_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - not installed or broken: found later, or never
            pass
    _keep_real_types()
    keep_classes = globals().get("_keep_real_classes")
    if callable(keep_classes):
        keep_classes()
    _own.update((k, v) for k, v in vars(_self).items() if k not in _RUN_STATE)
    tables = [_BUILTINS, _real_types, globals().get("_real_classes")]
    _own_tables[:] = [(t, dict(t)) for t in tables if _type(t) is dict]
    _self.__class__ = _ReadOnlyModule


def _restore() -> None:
    """This module as `kernel_start` left it: in `sys.modules`, with its own functions and
    tables (what an answer added to a table stays only where kernel start had no entry)."""
    if not _own:
        return
    sys.modules[__name__] = _self
    package = sys.modules.get(__name__.rpartition(".")[0])
    if package is not None:
        vars(package)["probe"] = _self
    names = vars(_self)
    for name, value in _own.items():
        if names.get(name) is not value:
            names[name] = value
    for table, entries in _own_tables:
        for name, value in entries.items():
            if table.get(name) is not value:
                table[name] = value
