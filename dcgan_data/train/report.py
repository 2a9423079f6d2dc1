"""What a training run writes about itself: config.json when it starts (or resumes) and
train_report.json when it ends or is stopped. The keys are the files' own: old runs and
pipelines/check.py read them. Imports no torch: the report page reads these."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dcgan_data.core.errors import InputError
from dcgan_data.core.report import StageReport
from dcgan_data.train.options import TrainOptions


@dataclass
class RunConfig(StageReport):
    """config.json: the run's settings, then the data and machine it runs on, in one flat
    object (the settings' keys first)."""

    settings: TrainOptions | None = None  # None: a config.json without them
    data: str | None = None  # the shard directory, resolved
    data_rows: int | None = None
    device: str | None = None
    threads: int | None = None  # torch threads per process
    world_size: int | None = None  # processes
    feed: str | None = None  # the feed in use: memory or stream (settings.feed may say auto)
    total_steps: int | None = None
    steps_per_epoch: int | None = None
    torch: str | None = None  # torch's version

    def to_json(self) -> dict[str, Any]:
        settings = dataclasses.asdict(self.settings) if self.settings is not None else {}
        return {**settings, **{name: getattr(self, name) for name in _run_fields()}}

    @classmethod
    def from_json(cls, data: dict[str, Any], strict: bool = False) -> RunConfig:
        names = [f.name for f in dataclasses.fields(TrainOptions)]
        missing = [name for name in [*names, *_run_fields()] if name not in data]
        if strict and missing:
            raise InputError(f"RunConfig: the config has no {missing[0]!r}")
        chosen = {name: data[name] for name in names if name in data}
        return cls(settings=TrainOptions(**chosen) if chosen else None,
                   **{name: data[name] for name in _run_fields() if name in data})


def _run_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(RunConfig) if f.name != "settings"]


@dataclass
class TrainReport(StageReport):
    """train_report.json: how far the run got. A run still training (or killed) has none:
    read from an empty object, it is all defaults."""

    run: str = ""  # the run directory
    start_step: int = 0  # the step this invocation started (or resumed) at
    interrupted: int = 0  # the signal that stopped the run, or 0
    step: int | None = None  # the last step trained
    total_steps: int | None = None
    last: MetricsRecord | None = None  # the last metrics.jsonl line
    checkpoint: str = ""  # checkpoints/last.pt


@dataclass
class MetricsRecord(StageReport):
    """One metrics.jsonl line: the losses and D's mean outputs at a logged step, the speed,
    and on an evaluation step the quality figures (`quality`, written flat beside the rest:
    hash_fd, hash_kid, eval_images, ... whatever the evaluator measured)."""

    step: int
    loss_D: float
    loss_G: float
    D_x: float | None = None  # None: a line from a version that did not log D's outputs
    D_G_z: float | None = None
    images_per_s: float | None = None
    quality: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        line = super().to_json()
        line.update(line.pop("quality"))
        return line

    @classmethod
    def from_json(cls, data: dict[str, Any], strict: bool = False) -> MetricsRecord:
        named = {f.name for f in dataclasses.fields(cls)} - {"quality"}
        line = {k: v for k, v in data.items() if k in named}
        line["quality"] = {k: v for k, v in data.items() if k not in named}
        return super().from_json(line, strict=strict)

