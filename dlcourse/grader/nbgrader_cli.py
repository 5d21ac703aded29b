"""`python -m dlcourse.grader.nbgrader_cli ARGS`: nbgrader's own command line, started lean.

Grading a class starts Python processes by the dozen: one per nbgrader command, one per
student (`dlcourse.grader.child`). nbformat's jsonschema imports `rfc3987_syntax`, which
builds a grammar at import time (1-3 s of CPU) only to check the "iri" string format, which
no notebook schema uses; jsonschema goes on without it when it cannot be imported.
"""

from __future__ import annotations

import sys


def skip_unused_imports() -> None:
    """Call before anything imports jsonschema."""
    sys.modules.setdefault("rfc3987_syntax", None)


if __name__ == "__main__":
    skip_unused_imports()
    from nbgrader.apps.nbgraderapp import main

    sys.argv[0] = "nbgrader"
    main()
