"""Kernel side of the hidden tests: record values as plain JSON data for the grader to judge.

Nothing here decides a grade. A hidden test calls the student's functions and records what they
return; the grader compares those records with the reference run in its own process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

MIME = "application/vnd.dlcourse.probe+json"
MAX_ELEMENTS = 1_000_000
MAX_DEPTH = 20
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
) -> None:
    """Send `value` to the grader under `key`; the tolerances count only in the reference run."""
    _emit(_payload(key, encode(value), rtol, atol, hint, dtype))


def record_call(
    key: str,
    fn: Callable[..., Any],
    /,
    *args: Any,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    hint: str = "",
    dtype: bool = False,
    **kwargs: Any,
) -> None:
    """Like record(key, fn(*args, **kwargs)), but an exception is recorded instead of raised."""
    try:
        encoded = encode(fn(*args, **kwargs))
    except Exception as exc:
        encoded = {"__error__": _describe(exc)}
    _emit(_payload(key, encoded, rtol, atol, hint, dtype))


def _payload(key: str, encoded: Any, rtol: float, atol: float, hint: str, dtype: bool) -> dict:
    return {
        "key": str(key),
        "value": encoded,
        "rtol": float(rtol),
        "atol": float(atol),
        "hint": str(hint),
        "dtype": bool(dtype),
    }


def method(*, uses: tuple[str, ...] = (), forbids: tuple[str, ...] = (), hint: str = "") -> None:
    """State the exercise's method rule; the grader checks it against the answer's source."""
    _emit({"key": "__method__", "uses": list(uses), "forbids": list(forbids), "hint": str(hint)})
