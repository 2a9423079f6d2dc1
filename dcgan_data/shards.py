"""The documented import path of `dcgan_data.core.shards`: the same module object."""

import sys

from dcgan_data.core import shards as _module

sys.modules[__name__] = _module
