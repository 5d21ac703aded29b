"""Applies to every test, including the nbval runs over notebooks/ and source/.

Kernels started by nbval inherit this environment: quick training settings (as in CI and in
the grader), no TensorFlow log noise, fixed hash seed, and never a data download.
"""

import os

os.environ.setdefault("DLCOURSE_QUICK", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.pop("DLCOURSE_ALLOW_DOWNLOAD", None)
