"""nbgrader for students (JUPYTER_CONFIG_PATH=deploy/student, `make student-lab`).

Students only fetch, validate and submit: the course id and the exchange the instructor
releases to (DLCOURSE_EXCHANGE, e.g. /srv/nbgrader/exchange on a shared machine).
"""

import os

from dlcourse import settings
from dlcourse.validate import use_counting_validator

c = get_config()  # noqa: F821 - injected by nbgrader/traitlets

c.CourseDirectory.course_id = "dlcourse"
c.Exchange.root = os.environ.get("DLCOURSE_EXCHANGE", "/srv/nbgrader/exchange")
# The course's one size limit for a submitted file (nbgrader's default, 5 MB, would skip a
# notebook with plots that collect and grading accept).
c.CourseDirectory.max_file_size = settings.MAX_FILE_KB
# Checkpoints and caches are never submitted; nor are they reported as extra notebooks.
c.ExchangeFactory.submit = "dlcourse.submit.SubmitWhatIsCopied"
# The Validate button's dialog counts the failing checks (dlcourse/validate.py).
use_counting_validator()
