"""The documented import path of `dcgan_data.export.torch_dataset`: the same module object."""

import sys

from dcgan_data.export import torch_dataset as _module

sys.modules[__name__] = _module
