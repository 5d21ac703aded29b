"""Applies to every test, including the nbval runs over notebooks/ and source/.

Kernels started by nbval inherit this environment: quick training settings (as in CI and in
the grader), no TensorFlow log noise, fixed hash seed, and never a data download.
"""

import os

from dlcourse import settings

os.environ.setdefault(settings.QUICK, "1")
for _key, _value in settings.QUIET_TF.items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.pop(settings.ALLOW_DOWNLOAD, None)
