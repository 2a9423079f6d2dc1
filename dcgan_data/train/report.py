"""What a training run writes about itself: config.json when it starts (or resumes) and
train_report.json when it ends or is stopped. The keys are the files' own: old runs and
pipelines/check.py read them. Imports no torch: the report page reads these."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
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
    last: dict[str, Any] | None = None  # the last metrics.jsonl line
    checkpoint: str = ""  # checkpoints/last.pt
