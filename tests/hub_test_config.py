"""The test hub: deploy/jupyterhub/jupyterhub_config.py as it is, with JupyterHub's
DummyAuthenticator (one shared password, DLCOURSE_HUB_TEST_PASSWORD) instead of PAM, so the
test's throwaway Unix accounts need no passwords. Used by tests/test_hub.py only."""

import os
from pathlib import Path

c = get_config()  # noqa: F821 - injected by JupyterHub/traitlets

load_subconfig(  # noqa: F821 - injected by JupyterHub/traitlets
    str(Path(__file__).resolve().parent.parent / "deploy" / "jupyterhub" / "jupyterhub_config.py")
)
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["DLCOURSE_HUB_TEST_PASSWORD"]
