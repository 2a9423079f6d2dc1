"""The documented import path of `dcgan_data.dedup.partition`: the same module object."""

import sys

from dcgan_data.dedup import partition as _module

sys.modules[__name__] = _module
