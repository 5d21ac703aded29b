"""nbgrader for the formgrader service on the course's JupyterHub (the course directory's
own nbgrader_config.py is loaded after this one and sets everything else): students added
in the formgrader join the hub group nbgrader-<course>. The Manage Assignments page does not
dump the loaded configuration (it holds the course's classes, which are not JSON: nbgrader
logs "Formgrader config is not serializable" on every visit)."""

from nbgrader.auth import JupyterHubAuthPlugin

c = get_config()  # noqa: F821 - injected by nbgrader/traitlets

c.Authenticator.plugin_class = JupyterHubAuthPlugin
c.FormgradeExtension.debug = False
