"""nbgrader configuration for the course, tuned for TensorFlow worksheets.

Every number here is explained; change them in one place, here.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 - injected by nbgrader/traitlets

COURSE_ROOT = Path(__file__).resolve().parent

# TensorFlow's C++ logging goes to stderr, and nbgrader scores a test cell 0 when it writes
# anything to stderr. Silence it for every kernel nbgrader starts (kernels inherit our env).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")

c.CourseDirectory.course_id = "dlcourse"
c.CourseDirectory.root = str(COURSE_ROOT)
# Which notebooks make up each assignment: everything .ipynb in source/<assignment>/.
c.CourseDirectory.notebook_id = "*"
# Data sets never travel inside assignments (worksheets load them through dlcourse.data),
# so anything bigger than 5 MB in an assignment folder is a mistake: nbgrader skips it
# (max_file_size is in kilobytes).
c.CourseDirectory.max_file_size = 5000

# Exchange: a directory students and instructors can both reach. By default it lives in the
# repo's ignored work area, so `make demo` works anywhere; a real course points it at a
# shared path, e.g. DLCOURSE_EXCHANGE=/srv/nbgrader/exchange.
c.Exchange.root = os.environ.get("DLCOURSE_EXCHANGE", str(COURSE_ROOT / "work" / "exchange"))

# Per-cell timeout (seconds). The slowest graded cell in any worksheet does one short,
# deterministic training step on a small subset (under 10 s on 2 CPU cores); the first cell
# imports TensorFlow (about 5 s). 60 s leaves 6x headroom for a loaded machine while an
# infinite loop in a student's answer costs at most one minute per cell.
c.Execute.timeout = 60
# Kernel start-up (importing ipykernel) can be slow on a cold, busy machine.
c.Execute.startup_timeout = 120
c.Execute.interrupt_on_timeout = True

# Drop stderr outputs that consist only of TensorFlow/absl log lines, so a correct answer is
# never scored 0 because TensorFlow logged something. Anything else on stderr still counts.
_TF_LOG_LINE = (
    r"(?:"
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+\] .*"  # TF C++ logging
    r"|[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+\] .*"  # absl C++ logging
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .*|\s*"
    r")"
)
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = rf"\A(?:{_TF_LOG_LINE}\n?)+\Z"

# Limit what a runaway print loop can put into the gradebook and feedback.
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A student who deletes a test cell must not escape that test: nbgrader puts it back (with a
# note in the cell) and grades it.
c.OverwriteCells.add_missing_cells = True
