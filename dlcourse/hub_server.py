"""What the course's Jupyter servers on the hub load from dlcourse (deploy/jupyterhub).

1. `QuietShimNotice`, a logging filter (students' servers and the formgrader): JupyterHub
5.5's single-user extension adds its page templates to `NotebookApp.extra_template_paths`,
and notebook_shim then warns, in JupyterLab's and Notebook's log, at every server start, that
"'extra_template_paths' was found in both NotebookApp and ServerApp". It is JupyterHub's own
setting, not the course's, and harmless (those templates are the classic notebook's): the
filter drops that one line. It is put on those apps' loggers when this extension is linked,
which is before theirs (extensions link in the order of their names), so before the notice.

2. The formgrader's file links, right on a JupyterHub service (where nbgrader's formgrader
extension is on: the course's formgrader service, deploy/jupyterhub/grader).

nbgrader 0.9.6's Manage Assignments page links an assignment's name and its Preview to
`"/tree/" + url_prefix + "/source/<assignment>"`, and a submission to `"/notebooks/" +
url_prefix + ...` (static/js/utils.js, `linkTo`): absolute paths from the host's root, where
`url_prefix` is the course directory relative to the server's root (`.` here). On the hub the
service lives at `/services/<course>/`, so `/tree/./source/ws01` is the hub's 404; no nbgrader
setting changes the `/tree/` (nbgrader issues #1794, #1888). The one thing a setting decides
is `url_prefix`, so under a hub service this makes it `./../services/<course>/tree/.`: the
browser resolves `/tree/./../services/<course>/tree/./source/ws01` to the service's own file
browser, `/services/<course>/tree/source/ws01` (Jupyter Notebook's tree page; a notebook there
redirects to its editor). It starts with `./`, not `../`, so nbgrader does not take it for a
course directory outside the server's root.

Inside JupyterLab (the formgrader in a Lab tab) nbgrader sends these paths to Lab's file
browser instead, which does not resolve `..`: on the hub, open the formgrader page itself
(the service's default page), as README says.
"""

from __future__ import annotations

import logging
import os
import posixpath

SERVICE_PREFIX = "JUPYTERHUB_SERVICE_PREFIX"  # e.g. /services/dlcourse/, set by the hub
SHIM_NOTICE = "'extra_template_paths' was found in both NotebookApp and ServerApp"


class QuietShimNotice(logging.Filter):
    """Drops notebook_shim's notice about JupyterHub's `extra_template_paths` (above)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return SHIM_NOTICE not in record.getMessage()


def hub_url_prefix(relpath: str, service_prefix: str | None) -> str:
    """`url_prefix` for the formgrader's links: `relpath` (the course directory relative to
    the server's root) reached through the service's `tree/` page."""
    if not service_prefix or relpath.startswith("../"):
        return relpath  # no hub service, or a bad setup that nbgrader reports itself
    return posixpath.join(".", "..", service_prefix.strip("/"), "tree", relpath)


def _patch() -> None:
    from nbgrader.server_extensions.formgrader.formgrader import FormgradeExtension

    nbgrader_prefix = FormgradeExtension.url_prefix
    if getattr(nbgrader_prefix.fget, "dlcourse", False):
        return  # patched already

    def url_prefix(self) -> str:
        return hub_url_prefix(nbgrader_prefix.fget(self), os.environ.get(SERVICE_PREFIX))

    url_prefix.dlcourse = True
    FormgradeExtension.url_prefix = property(url_prefix)


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "dlcourse.hub_server"}]


# notebook_shim logs the notice through each of these apps' own logger.
SHIMMED_APPS = ("LabApp", "JupyterNotebookApp")


def _link_jupyter_server_extension(serverapp) -> None:  # noqa: ARG001 - the hook's signature
    for name in SHIMMED_APPS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietShimNotice) for f in logger.filters):
            logger.addFilter(QuietShimNotice())


def _load_jupyter_server_extension(serverapp) -> None:
    if serverapp.jpserver_extensions.get("nbgrader.server_extensions.formgrader"):
        _patch()
        prefix = os.environ.get(SERVICE_PREFIX)
        serverapp.log.info("dlcourse: the formgrader's file links go through %s", prefix)
