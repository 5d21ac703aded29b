"""The test hub: deploy/jupyterhub/jupyterhub_config.py as it is, with JupyterHub's
SharedPasswordAuthenticator (one password, DLCOURSE_HUB_TEST_PASSWORD) instead of PAM, so the
test's throwaway Unix accounts need no passwords. Used by tests/test_hub.py, which points
DLCOURSE_HUB_TEST_DEPLOY_CONFIG at the copy install-hub.sh installed (default: the repo's)."""

import os
from pathlib import Path

c = get_config()  # noqa: F821 - injected by JupyterHub/traitlets

REPO_CONFIG = (
    Path(__file__).resolve().parent.parent / "deploy" / "jupyterhub" / "jupyterhub_config.py"
)
load_subconfig(  # noqa: F821 - injected by JupyterHub/traitlets
    os.environ.get("DLCOURSE_HUB_TEST_DEPLOY_CONFIG", str(REPO_CONFIG))
)
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ["DLCOURSE_HUB_TEST_PASSWORD"]
