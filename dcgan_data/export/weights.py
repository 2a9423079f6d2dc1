"""`export-weights`: a run's G and D as pytorch/examples' DCGAN reads them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dcgan_data.core.files import atomic_path, check_output, write_json
from dcgan_data.export.options import ExportWeightsOptions


def export_weights(run: str | os.PathLike, out: str | os.PathLike,
                   options: ExportWeightsOptions | None = None, **settings: Any
                   ) -> dict[str, Any]:
    """Write a run's G and D as pytorch/examples' DCGAN reads them: out/netG.pth and
    out/netD.pth, state dicts of an `nn.Sequential` named `main`.

    Our layers are the examples' layers in the same order (D's final Sigmoid has no weights,
    so our logit D becomes their probability D unchanged); only the attribute name differs.
    At --size 64 their `main.py --netG netG.pth --netD netD.pth --ngf N --ndf N` loads them.
    """
    options = (options or ExportWeightsOptions()).replace(**settings)
    import torch

    from dcgan_data.train.checkpoint import load_networks
    from dcgan_data.train.sampling import checkpoint_path

    out = Path(out)
    check_output(out, directory=True, option="-o")
    path = checkpoint_path(run, options.checkpoint)
    nets, ckpt = load_networks(path, ("G", "D"))  # refused here, before anything is written
    files = {}
    for net, model in nets.items():
        state = {("main." + k.removeprefix("net.")): v for k, v in model.state_dict().items()}
        target = out / f"net{net}.pth"
        with atomic_path(target) as tmp:
            torch.save(state, tmp)
        files[f"net{net}"] = str(target)
    cfg = ckpt["config"]
    info = {"checkpoint": str(path), "step": ckpt["step"], **files,
            **{k: cfg[k] for k in ("size", "nz", "ngf", "ndf")},
            "examples_compatible": cfg["size"] == 64}
    write_json(out / "weights.json", info)
    return info
