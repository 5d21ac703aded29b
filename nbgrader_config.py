"""nbgrader configuration for the course, tuned for TensorFlow worksheets.

Every number here is explained; change them in one place, here.
"""

import os
import sys
from pathlib import Path

from nbgrader.converters import Autograde, GenerateAssignment, GenerateFeedback
from nbgrader.preprocessors import Execute, OverwriteCells, SaveAutoGrades

from dlcourse import settings
from dlcourse.grader.decide import DecideVerdicts, HideHiddenTests
from dlcourse.grader.door import use_course_autograde
from dlcourse.grader.execute import SandboxedExecute
from dlcourse.grader.feedback import AddGradingNotes
from dlcourse.grader.overwrite import OverwriteCellsKnowingHiddenTests
from dlcourse.grader.safe_page import CourseHTMLExporter, use_safe_pages
from dlcourse.grader.sanitize import SanitizeStudentContent
from dlcourse.grader.written import DropRubrics
from dlcourse.kernel_env import KERNEL_ENV, TF_LOG_ONLY
from dlcourse.validate import use_counting_validator

c = get_config()  # noqa: F821 - injected by nbgrader/traitlets

COURSE_ROOT = Path(__file__).resolve().parent

# nbgrader runs helpers such as `alembic` (creating the gradebook) from PATH: put this
# Python's bin directory first, so `.venv/bin/nbgrader ...` works without an activated venv.
_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _BIN:
    os.environ["PATH"] = os.pathsep.join([_BIN, os.environ.get("PATH", "")]).rstrip(os.pathsep)

# TensorFlow's logging goes to stderr, and nbgrader scores a test cell 0 when it writes
# anything to stderr. Every kernel nbgrader starts inherits these (the grading sandbox keeps
# TF_* variables); its import-time C++ lines are caught by dlcourse.kernel_env, which the
# kernel spec and `import dlcourse` install.
for _key, _value in KERNEL_ENV.items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")

c.CourseDirectory.course_id = "dlcourse"
c.CourseDirectory.root = str(COURSE_ROOT)
# The gradebook: SQLite in the course folder by default; a database server for a big class,
# e.g. DLCOURSE_DB_URL=postgresql://grader@dbhost/dlcourse.
c.CourseDirectory.db_url = os.environ.get(
    "DLCOURSE_DB_URL", f"sqlite:///{COURSE_ROOT / 'gradebook.db'}"
)
# Which notebooks make up each assignment: everything .ipynb in source/<assignment>/.
c.CourseDirectory.notebook_id = "*"
# The one size limit for a file (dlcourse.settings.MAX_FILE_KB, which the students' config
# uses too): collect refuses a submitted file over it and grading refuses it too, each with a
# note the student sees in feedback and the instructor in the report
# (dlcourse/grader/intake.py); never a silent drop. generate_assignment skips a bigger file in
# source/ (data sets never travel inside assignments: worksheets load them through
# dlcourse.data).
c.CourseDirectory.max_file_size = settings.MAX_FILE_KB

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

# Drop stderr outputs that consist only of TensorFlow/absl log lines (both formats TF 2.21
# prints, see dlcourse/kernel_env.py), so a correct answer is never scored 0 because
# TensorFlow logged something. Anything else on stderr still counts.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = TF_LOG_ONLY

# Limit what a runaway print loop can put into the gradebook and feedback.
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100

# Untrusted code: every grading kernel runs sandboxed (dlcourse/grader/sandbox.py): no
# network, a read-only view of Python and the data sets, its own scratch directory, no access
# to source/, the gradebook, the exchange or other submissions, resource limits, and a
# wall-clock limit per notebook. nbgrader's Execute step is replaced by one that does this.
# Verdicts are not the kernel's: before nbgrader saves the grades, DecideVerdicts compares
# what each test cell's hidden tests recorded with the reference solution's values, in this
# process, and sets each test cell to full points or 0 (dlcourse/grader/decide.py). The
# OverwriteCells is replaced by one that does not warn "checksum has changed!" for every
# untouched test cell with hidden tests (dlcourse/grader/overwrite.py); a real edit of a
# locked cell is still reported. The other steps are nbgrader's own list, whatever this
# nbgrader version has in it.
_REPLACED = {Execute: SandboxedExecute, OverwriteCells: OverwriteCellsKnowingHiddenTests}


def _nbgrader_steps(trait: str) -> list:
    return [_REPLACED.get(step, step) for step in Autograde.class_traits()[trait].default()]


c.Autograde.sanitize_preprocessors = _nbgrader_steps("sanitize_preprocessors")
_steps = _nbgrader_steps("autograde_preprocessors")
_steps.insert(_steps.index(SaveAutoGrades), DecideVerdicts)
_steps.insert(_steps.index(SaveAutoGrades), SanitizeStudentContent)
c.Autograde.autograde_preprocessors = _steps
# One grading path, whichever door: the formgrader's Autograde button and `nbgrader autograde`
# grade through the course's driver (the canary, staging and repairs, one sandboxed process
# per student, notes; a broken environment writes nothing), like `python -m dlcourse
# autograde` (dlcourse/grader/door.py).
use_course_autograde()
# The Validate button's dialog counts the failing checks (dlcourse/validate.py).
use_counting_validator()
# Feedback shows what each hidden test checked and why it failed, not its source; starts with
# the student's grading notes (dlcourse/grader/feedback.py); and never runs what a student put
# into a Markdown cell or an output (no script injection).
c.GenerateFeedback.preprocessors = [
    *GenerateFeedback.class_traits()["preprocessors"].default(),
    HideHiddenTests,
    AddGradingNotes,
    SanitizeStudentContent,
]
c.HTMLExporter.sanitize_html = True
# The feedback page and formgrader's grading view are rendered by the course's exporter: the
# notebook cleaned again, Markdown's HTML sanitised with URL schemes checked after entity
# decoding, and a Content-Security-Policy that lets no inline script or event handler run
# but the template's own (in the page, and as formgrader's HTTP header; see
# dlcourse/grader/safe_page.py).
c.GenerateFeedback.exporter_class = CourseHTMLExporter
use_safe_pages()
# Collect refuses inbound entries that are links, or filed under another student's name;
# it copies without following any link (names opened with O_NOFOLLOW relative to the folder,
# only regular files copied, from the descriptor checked), skipping links and special files
# with a note, and decides the timestamp used for lateness from the entry's ctime, not only
# the student's claim (dlcourse/grader/exchange.py).
c.ExchangeFactory.collect = "dlcourse.grader.exchange.StrictCollect"
# Graded copies of students' work are for the course staff only (nbgrader's default is 444).
c.Autograde.permissions = 440

# Limits per grading kernel, sized from benchmarks/grading_footprint.py (reference solutions
# under the autograder, 2 cores): at most 6 s wall, 5 s of CPU, 2.4 GB of address space
# (TensorFlow maps large arenas up front) and 0.7 GB resident. Address space 6 GB is 2.5x the
# heaviest; a memory blow-up stops there with a MemoryError. A notebook gets 300 s of wall
# clock (50x the slowest reference: room for five stopped infinite loops at 60 s each) and
# 600 CPU seconds (both cores busy for the whole 300 s). Processes: TensorFlow starts dozens
# of threads, and threads count; a fork bomb stops at this number. Where cgroups are available
# (dlcourse/grader/cgroups.py), memory_mb and processes also bound each kernel's whole process
# tree, and `cpus` is its CPU quota: one CPU (the fair share with one worker per core) is more
# than the 5 s of CPU in 6 s wall that the heaviest reference needs.
c.SandboxedExecute.limits = {
    "memory_mb": 6144,
    "cpu_seconds": 600,
    "processes": 512,
    "open_files": 1024,
    "file_size_mb": 256,
    "notebook_seconds": 300,
    "cpus": 1,
    # What a kernel can write, all tmpfs (memory; with cgroups, counted in memory_mb): its
    # private /tmp, and its working directory and HOME, each.
    "tmp_mb": 512,
    "work_mb": 256,
}
# A worksheet that needs more gets its own entry, e.g. {"ws05_cnn": {"memory_mb": 12288}}.
c.SandboxedExecute.per_assignment = {}

# Written questions (dlcourse/grader/written.py): the student version (make release, the
# formgrader's Generate button) has no rubric cell; the answer cell gets the text stub below.
# Formgrader's grading view shows the rubric from the master copy (CourseHTMLExporter).
c.GenerateAssignment.preprocessors = [
    DropRubrics,
    *GenerateAssignment.class_traits()["preprocessors"].default(),
]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A student who deletes a test cell must not escape that test: nbgrader puts it back (with a
# note in the cell) and grades it.
c.OverwriteCells.add_missing_cells = True
