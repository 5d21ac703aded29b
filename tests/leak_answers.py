"""A hostile student's answers to ws01_tensors that try to send the hidden tests back.

IPython hooks print each test cell's source to stdout, stderr, os.write(1/2) and display(),
and write it to files in the notebook's folder; functions raise exceptions carrying their
caller's source and local variables (the hidden inputs), name an exception class after them,
or return them as their value; a one-element check fails, where "largest difference" would be
the expected value itself. tests/test_feedback_leaks.py grades them through every door on one
machine, tests/test_dask.py on the cluster.
"""

from __future__ import annotations

MARK = "LEAK>"  # the hostile code builds it at run time, so its own source never holds it

HOOKS = """
import os
import sys

from IPython.display import display

MARK = "LE" + "AK>"


def _send_back(raw):
    if "### BEGIN " + "HIDDEN" not in raw:  # a test cell with its hidden part
        return
    print(MARK, raw)
    print(MARK, raw, file=sys.stderr)
    display({"text/plain": MARK + raw, "text/html": "<pre>" + MARK + raw + "</pre>"}, raw=True)
    os.write(1, (MARK + raw).encode())
    os.write(2, (MARK + raw).encode())
    for name in ("leak.txt", "ws01_tensors.html", "../leak.txt"):
        try:
            with open(name, "a") as f:
                f.write(MARK + raw)
        except OSError:
            pass


get_ipython().events.register("pre_run_cell", lambda info: _send_back(info.raw_cell))
get_ipython().events.register("post_run_cell", lambda result: _send_back(result.info.raw_cell))
"""
CALLERS = """
import inspect
import linecache


def _callers():
    text = ["LE" + "AK>"]
    for frame in inspect.stack()[2:]:
        text.append("".join(linecache.getlines(frame.filename)))
        local = {k: v for k, v in frame.frame.f_locals.items() if not k.startswith("_")}
        text.append(repr(local)[:3000])
    return "\\n".join(text)


def _hidden():
    return any(f.function == "record_call" for f in inspect.stack())
"""
HOSTILE = {
    "ex_to_image_batch": HOOKS
    + """

def to_image_batch(images):
    pixels = tf.cast(tf.convert_to_tensor(images), tf.float32) / 255.0
    return pixels[..., tf.newaxis]
""",
    "ex_normalize_images": CALLERS
    + """

def normalize_images(x):
    if _hidden():  # right on the visible checks, an exception quoting the hidden ones
        raise ValueError(_callers())
    x = tf.cast(x, tf.float32)
    return (x - tf.reduce_mean(x, axis=[0, 1, 2])) / tf.math.reduce_std(x, axis=[0, 1, 2])
""",
    "ex_center_crop": CALLERS
    + """

def center_crop(images, size):
    raise RuntimeError(_callers())
""",
    "ex_dense": CALLERS
    + """

def dense(x, w, b):
    if _hidden():  # a value that is the hidden inputs and source
        return _callers() + repr((x, w, b))
    return tf.nn.relu(tf.matmul(x, w) + b)
""",
    "ex_graph_ops": CALLERS
    + """

def graph_op_types(fn, *specs):
    raise type(_callers(), (Exception,), {})()
""",
    "ex_ema_update": """
def ema_update(average, value, decay):
    if average.shape == ():  # the one-element check: its difference is the expected value
        average.assign(0.0 * average)
        return average
    average.assign(decay * average + (1.0 - decay) * value)
    return average
""",
}
# test cell -> its score: every other test cell keeps full marks. The one-element trick gets
# ema_update's scalar checks wrong and keeps its first check: 1 of 3 (partial credit).
LOSES = {"test_normalize_images": 0.0, "test_center_crop": 0.0, "test_dense": 0.0}
LOSES |= {"test_graph_ops": 0.0, "test_ema_update": 0.67}
