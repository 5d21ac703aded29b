"""nbgrader for students (JUPYTER_CONFIG_PATH=deploy/student, `make student-lab`).

Students only fetch, validate and submit: the course id and the exchange the instructor
releases to (DLCOURSE_EXCHANGE, e.g. /srv/nbgrader/exchange on a shared machine).
"""

import os

c = get_config()  # noqa: F821 - injected by nbgrader/traitlets

c.CourseDirectory.course_id = "dlcourse"
c.Exchange.root = os.environ.get("DLCOURSE_EXCHANGE", "/srv/nbgrader/exchange")
# Checkpoints and caches are never submitted; nor are they reported as extra notebooks.
c.ExchangeFactory.submit = "dlcourse.submit.SubmitWhatIsCopied"
