"""Kernel side of the mutant runner: put the kernel back as it was before an exercise.

`snapshot(globals())` is run once per exercise, after the setup cells and the reference
answers and tests of the exercises before it; `restore(globals())` before each mutant gives
that mutant the same start: the names bound then, in the student's globals and in the test
cells' own scope (`dlcourse.probe.test_values`) (a shallow copy, so a mutant's new or
rebound names are dropped), fresh copies of the NumPy arrays, the values of TensorFlow
variables and Keras models bound then, and the random states (Python, NumPy, TensorFlow's
op seeds, Keras' seed generator and layer-name counters). What a mutant changes inside
other objects is not undone: the runner checks the reference again after the last mutant.
"""

from __future__ import annotations

import copy
import random
from typing import Any

_SAVED = "__dlcourse_mutants_saved__"


def snapshot(namespace: dict[str, Any]) -> None:
    from dlcourse import probe

    names = {k: v for k, v in namespace.items() if k != _SAVED}
    tests = dict(probe.test_values)  # what the test cells run so far assigned in their scope
    namespace[_SAVED] = {
        "names": names,
        "values": {k: _value_of(v) for k, v in names.items()},
        "tests": tests,
        "test values": {k: _value_of(v) for k, v in tests.items()},
        "random": _random_state(),
    }


def restore(namespace: dict[str, Any]) -> None:
    from dlcourse import probe

    saved = namespace[_SAVED]
    namespace.clear()
    namespace.update(saved["names"])
    namespace[_SAVED] = saved
    _put_all_back(namespace, saved["names"], saved["values"])
    probe.test_values.clear()
    probe.test_values.update(saved["tests"])
    _put_all_back(probe.test_values, saved["tests"], saved["test values"])
    _set_random_state(saved["random"])


def _put_all_back(target: dict[str, Any], names: dict[str, Any], values: dict[str, Any]) -> None:
    for name, value in values.items():
        if value is not None:
            target[name] = _put_back(names[name], value)


def _value_of(obj: Any) -> Any:
    """What to put back for a name: an array's copy, a variable's or a model's weights."""
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.copy()
    kind = type(obj).__module__
    if kind.startswith(("tensorflow", "keras")):
        if hasattr(obj, "assign") and hasattr(obj, "numpy"):
            return obj.numpy()
        if hasattr(obj, "get_weights") and hasattr(obj, "set_weights"):
            return obj.get_weights()
    return None


def _put_back(obj: Any, value: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return value.copy()
    if hasattr(obj, "assign"):
        obj.assign(value)
    else:
        obj.set_weights(value)
    return obj


def _random_state() -> dict[str, Any]:
    import numpy as np

    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state()}
    try:
        from keras.src.backend.common import global_state
        from tensorflow.python.eager import context

        ctx = context.context()
        state["tf"] = (ctx._seed, ctx._rng.getstate() if ctx._rng else None)
        tracker = vars(global_state.GLOBAL_STATE_TRACKER)
        state["keras"] = {k: copy.copy(v) for k, v in tracker.items()}
        generator = tracker.get("global_seed_generator")
        if generator is not None:
            state["keras_seed"] = generator.state.numpy()
    except (ImportError, AttributeError):
        pass
    return state


def _set_random_state(state: dict[str, Any]) -> None:
    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "tf" not in state:
        return
    from keras.src.backend.common import global_state
    from tensorflow.python.eager import context

    seed, rng = state["tf"]
    ctx = context.context()
    if seed is not None:
        ctx._set_global_seed(seed)
        if rng is not None:
            ctx._rng.setstate(rng)
    tracker = vars(global_state.GLOBAL_STATE_TRACKER)
    tracker.clear()
    tracker.update({k: copy.copy(v) for k, v in state["keras"].items()})
    if "keras_seed" in state:
        tracker["global_seed_generator"].state.assign(state["keras_seed"])
