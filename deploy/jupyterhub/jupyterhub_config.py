"""JupyterHub for one class on one server (README: "Running the course for a class").

Run as root, with the course's venv (students' servers and the formgrader run as their own
Unix users, started by the hub through setuid). Installed by deploy/jupyterhub/install-hub.sh
(README), which copies this file into the venv everybody uses:

    DLCOURSE_HUB_STAFF=alice /opt/dlcourse-env/bin/jupyterhub \
        -f /opt/dlcourse-env/share/dlcourse/deploy/jupyterhub/jupyterhub_config.py

What is where (every path and name comes from dlcourse/hub.py, which documents the
DLCOURSE_HUB_* variables):

- groups `nbgrader-<course>` (the students, from the roster CSV) and `formgrade-<course>`
  (DLCOURSE_HUB_STAFF, the Unix group formgrade-<course> and the grader account); roles as in
  nbgrader's demo_multiple_classes;
- the formgrader: a hub-managed service `<course>` at /services/<course>/formgrader, a
  `jupyterhub-singleuser` run as the grader account in the course directory;
- students' servers: the venv's `jupyterhub-singleuser` in the student's home, configured by
  deploy/jupyterhub/student + deploy/student (Assignment List, Validate; no formgrader);
- the exchange: DLCOURSE_EXCHANGE (default /srv/nbgrader/exchange, mode 1777).

Authentication: DLCOURSE_HUB_AUTH = `pam` (default: the server's Unix passwords),
`native` (jupyterhub-nativeauthenticator: students sign up, an admin approves) or `lti13`
(ltiauthenticator: the LMS logs students in). The last two are packages this repo does not
install (README). Tests load this file (the installed copy) from tests/hub_test_config.py and
swap in JupyterHub's SharedPasswordAuthenticator.

The formgrader service and students' servers also load `dlcourse.hub_server` (a Jupyter
server extension, enabled in deploy/jupyterhub/*/jupyter_server_config.json): the formgrader's
file links, and one notice of JupyterHub's own kept out of the log.
"""

import os
from pathlib import Path

from dlcourse import hub

c = get_config()  # noqa: F821 - injected by JupyterHub/traitlets

course = hub.from_env()
state = course.state
# deploy/ beside this file: the checkout's, or the copy install-hub.sh puts into the venv
# (<venv>/share/dlcourse/deploy), which students may read: it holds no course material.
deploy = Path(__file__).resolve().parent.parent

# --- Where the hub listens and keeps its state ---------------------------------------------
c.JupyterHub.bind_url = course.url
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = course.hub_port
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{state}/jupyterhub_cookie_secret"
# configurable-http-proxy from deploy/jupyterhub/proxy, in the venv's proxy/ (make proxy;
# install-hub.sh), its REST API on loopback
c.ConfigurableHTTPProxy.command = hub.proxy_command()
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{course.proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = f"{state}/jupyterhub-proxy.pid"

# --- Who may log in -------------------------------------------------------------------------
auth = course.auth
if auth == "pam":
    c.JupyterHub.authenticator_class = "pam"
elif auth == "native":  # pip install jupyterhub-nativeauthenticator==1.3.0
    c.JupyterHub.authenticator_class = "native"
    c.NativeAuthenticator.open_signup = False  # an admin approves each sign-up
    c.Authenticator.admin_users = set(course.all_staff)
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
c.Authenticator.allowed_users = {*course.students, *course.all_staff, course.grader}

# --- Course groups, roles and the formgrader ------------------------------------------------
c.JupyterHub.load_groups = hub.groups(course)
c.JupyterHub.load_roles = hub.roles(course)
c.JupyterHub.services = [hub.formgrader_service(course, deploy)]
# The formgrader may need 10-30 s to answer on a cold start; JupyterHub alone waits about 10 s
# and then exits (jupyterhub/jupyterhub#5138). Wait up to DLCOURSE_HUB_SERVICE_TIMEOUT.
hub.wait_for_managed_services(course.service_timeout)

# --- Students' servers ----------------------------------------------------------------------
c.Spawner.cmd = [str(hub.bin_dir() / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.environment = hub.student_environment(course, deploy)
# First start on a busy server: Python, JupyterLab and the extensions load in 10-30 s.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# Measured (README): a worksheet kernel is 0.56 GB resident after its imports and peaks at
# 0.62 GB; the server adds 0.17 GB. LocalProcessSpawner does not enforce these limits (it
# exports them as MEM_LIMIT/CPU_LIMIT); systemdspawner and KubeSpawner (z2jh-values.yaml) do.
c.Spawner.mem_limit = course.mem_limit
c.Spawner.cpu_limit = course.cpu_limit
# Idle servers are not culled here: add jupyterhub-idle-culler as a service for a big class.
