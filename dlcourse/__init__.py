"""Helper package for the open deep-learning course."""

from dlcourse.device import DeviceInfo, quick_mode, setup
from dlcourse.seed import seed_everything

__all__ = ["DeviceInfo", "quick_mode", "seed_everything", "setup"]
__version__ = "0.1.0"
