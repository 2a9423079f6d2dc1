import pytest
import torch

from dcgan_data.core.devices import resolve_device
from dcgan_data.core.errors import InputError


def test_auto_and_cpu():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_unknown_or_missing_gpu_is_an_input_error():
    with pytest.raises(InputError, match="choose auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="sees no GPU"):
            resolve_device("cuda")
