"""nbgrader for students on the course's JupyterHub (loaded before deploy/student's config):
the Assignment List asks the hub which courses this user is in (groups nbgrader-<course>),
so a student sees only their own courses' assignments."""

from nbgrader.auth import JupyterHubAuthPlugin

c = get_config()  # noqa: F821 - injected by nbgrader/traitlets

c.Authenticator.plugin_class = JupyterHubAuthPlugin
