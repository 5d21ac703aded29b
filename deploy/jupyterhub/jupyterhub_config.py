"""JupyterHub for one class on one server (README: "Running the course for a class").

Run as root, with the course's venv (students' servers and the formgrader run as their own
Unix users, started by the hub through setuid):

    DLCOURSE_HUB_STAFF=alice .venv/bin/jupyterhub -f deploy/jupyterhub/jupyterhub_config.py

What is where (every path and name comes from dlcourse/hub.py, which documents the
DLCOURSE_HUB_* variables):

- groups `nbgrader-<course>` (the students, from the roster CSV) and `formgrade-<course>`
  (DLCOURSE_HUB_STAFF and the grader account); roles as in nbgrader's demo_multiple_classes;
- the formgrader: a hub-managed service `<course>` at /services/<course>/formgrader, a
  `jupyterhub-singleuser` run as the grader account in the course directory;
- students' servers: the venv's `jupyterhub-singleuser` in the student's home, configured by
  deploy/jupyterhub/student + deploy/student (Assignment List, Validate; no formgrader);
- the exchange: DLCOURSE_EXCHANGE (default /srv/nbgrader/exchange, mode 1777).

Authentication: DLCOURSE_HUB_AUTH = `pam` (default: the server's Unix passwords),
`native` (jupyterhub-nativeauthenticator: students sign up, an admin approves) or `lti13`
(ltiauthenticator: the LMS logs students in). The last two are packages this repo does not
install (README). Tests load this file from tests/hub_test_config.py and swap in JupyterHub's
DummyAuthenticator with a password.
"""

import os

from dlcourse import hub

c = get_config()  # noqa: F821 - injected by JupyterHub/traitlets

course = hub.from_env()
state = os.environ.get("DLCOURSE_HUB_STATE", "/srv/jupyterhub")

# --- Where the hub listens and keeps its state ---------------------------------------------
c.JupyterHub.bind_url = os.environ.get("DLCOURSE_HUB_URL", "http://:8000")
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{state}/jupyterhub_cookie_secret"
# configurable-http-proxy from deploy/jupyterhub/proxy (make setup: npm ci into .venv/proxy)
c.ConfigurableHTTPProxy.command = [
    str(hub.REPO / ".venv" / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy")
]
c.ConfigurableHTTPProxy.pid_file = f"{state}/jupyterhub-proxy.pid"

# --- Who may log in -------------------------------------------------------------------------
auth = os.environ.get("DLCOURSE_HUB_AUTH", "pam")
if auth == "pam":
    c.JupyterHub.authenticator_class = "pam"
elif auth == "native":  # pip install jupyterhub-nativeauthenticator==1.3.0
    c.JupyterHub.authenticator_class = "native"
    c.NativeAuthenticator.open_signup = False  # an admin approves each sign-up
    c.Authenticator.admin_users = set(course.staff)
elif auth == "lti13":  # pip install jupyterhub-ltiauthenticator==1.6.3
    c.JupyterHub.authenticator_class = "ltiauthenticator.lti13.auth.LTI13Authenticator"
    c.LTI13Authenticator.issuer = os.environ["DLCOURSE_LTI_ISSUER"]
    c.LTI13Authenticator.client_id = [os.environ["DLCOURSE_LTI_CLIENT_ID"]]
    c.LTI13Authenticator.authorize_url = os.environ["DLCOURSE_LTI_AUTHORIZE_URL"]
    c.LTI13Authenticator.jwks_endpoint = os.environ["DLCOURSE_LTI_JWKS_URL"]
    c.LTI13Authenticator.username_key = "email"
else:
    raise ValueError(f"DLCOURSE_HUB_AUTH={auth!r}: use pam, native or lti13")
# Only the roster, the staff and the grader account (new Unix accounts log in nowhere else).
c.Authenticator.allowed_users = {*course.students, *course.staff, course.grader}

# --- Course groups, roles and the formgrader ------------------------------------------------
c.JupyterHub.load_groups = hub.groups(course)
c.JupyterHub.load_roles = hub.roles(course)
c.JupyterHub.services = [hub.formgrader_service(course)]

# --- Students' servers ----------------------------------------------------------------------
c.Spawner.cmd = [str(hub.bin_dir() / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.environment = hub.student_environment(course)
# First start on a busy server: Python, JupyterLab and the extensions load in 10-30 s.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# Measured (README): a worksheet kernel is 0.56 GB resident after its imports and peaks at
# 0.62 GB; the server adds 0.17 GB. LocalProcessSpawner does not enforce these limits (it
# exports them as MEM_LIMIT/CPU_LIMIT); systemdspawner and KubeSpawner (z2jh-values.yaml) do.
c.Spawner.mem_limit = os.environ.get("DLCOURSE_HUB_MEM_LIMIT", "2G")
c.Spawner.cpu_limit = float(os.environ.get("DLCOURSE_HUB_CPU_LIMIT", str(course.threads)))
# Idle servers are not culled here: add jupyterhub-idle-culler as a service for a big class.
