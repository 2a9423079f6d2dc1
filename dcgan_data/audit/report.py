"""audit_report.json as a typed report: what the audit found, how it was calibrated, and how
it ran. Every field has a default so that an older or partial report still reads (the
report page shows what it has); the audit itself fills them all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dcgan_data.core.report import StageReport


@dataclass
class AuditParameters(StageReport):
    """The settings the audit ran with (`device` resolved, `engine` the scan's)."""

    n: int = 0
    holdout: str = ""
    alpha: float = 0.0
    neighbours: int = 0
    max_hash_candidates: int = 0
    context: int = 0
    shift: int = 0
    seed: int = 0
    device: str = ""
    checkpoint: str | None = None
    engine: str = ""


@dataclass
class AuditFiles(StageReport):
    """The files written in OUT (`nearest`: None when no sample had a nearest image)."""

    table: str = ""
    nearest: str | None = None
    distances: str = ""


@dataclass
class AuditReport(StageReport):
    """audit_report.json, its keys in their order."""

    generated: str = ""
    train: str = ""
    out: str = ""
    samples: int | None = None
    copies: int | None = None
    copy_fraction: float | None = None
    closer_than_holdout: float | None = None  # NaN when either side has no distance
    expected_false_copies: float | None = None
    verdict: str = ""
    calibration_warning: str | None = None  # only written when there is one
    training_images: int | None = None
    indexed_images: int | None = None
    holdout_images: int | None = None
    holdout_source: str = ""
    holdout_repeated_in_training: int | None = None
    holdout_called_copies: int | None = None
    holdout_keys: list[str] = field(default_factory=list)
    threshold: float | None = None
    alpha: float | None = None
    alpha_effective: float | None = None
    # q00, q01, q05, q25, q50, q75, q95 of the finite values ({} when there are none)
    sample_distance_quantiles: dict[str, float] = field(default_factory=dict)
    holdout_distance_quantiles: dict[str, float] = field(default_factory=dict)
    sample_relative_quantiles: dict[str, float] = field(default_factory=dict)
    holdout_relative_quantiles: dict[str, float] = field(default_factory=dict)
    samples_without_candidate: int | None = None
    nearest_found_by_hash: int | None = None
    input: dict[str, Any] = field(default_factory=dict)  # its keys depend on the kind read
    parameters: AuditParameters = field(default_factory=AuditParameters)
    model: dict[str, Any] = field(default_factory=dict)  # a trained one adds its statistics
    timings_s: dict[str, float] = field(default_factory=dict)
    files: AuditFiles = field(default_factory=AuditFiles)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.calibration_warning is None:
            del data["calibration_warning"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], strict: bool = False) -> AuditReport:
        # a report without a calibration warning had none
        return super().from_json({"calibration_warning": None, **data}, strict=strict)
