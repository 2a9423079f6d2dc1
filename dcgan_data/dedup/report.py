"""dedup's report (dedup_report.json), typed: the stage fills it, the report page reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dcgan_data.core.report import R, StageReport


@dataclass
class SelfFit(StageReport):
    """The decision fitted on the dataset at run time (`selffit.fit`'s estimates)."""

    rows_sampled: int = 0
    pairs_fitted: int = 0
    pairs_held_back: int = 0
    threshold: float | None = None
    threshold_by_expected_share: float | None = None
    threshold_by_hard_negatives: float | None = None
    held_back_pass_rate_by_kind: dict[str, float | None] = field(default_factory=dict)
    candidate_copy_share: float = 0.0
    expected_false_pairs: float = 0.0
    expected_false_share: float = 0.0
    pairs_accepted: int = 0

    @property
    def held_back_recall(self) -> float | None:
        """Held-back synthetic copies passed (the by-kind entry, kept as a key of its own)."""
        return self.held_back_pass_rate_by_kind.get("copy")

    @property
    def held_back_look_alike_pass_rate(self) -> float | None:
        return self.held_back_pass_rate_by_kind.get("look-alike crops")

    def to_json(self) -> dict[str, Any]:
        """The fields, and the two by-kind entries reports have always had as keys too."""
        out: dict[str, Any] = {}
        for key, value in super().to_json().items():
            if key == "held_back_pass_rate_by_kind":
                out["held_back_recall"] = self.held_back_recall
                out["held_back_look_alike_pass_rate"] = self.held_back_look_alike_pass_rate
            out[key] = value
        return out


@dataclass
class Grouping(StageReport):
    """How the groups were found: verified candidate pairs, or the paper's rule alone (then
    only `verified` and `partitions` are written)."""

    verified: bool = False
    threshold: float | None = None
    decision: str | None = None
    self_fit: SelfFit | None = None
    candidates: dict[str, int] = field(default_factory=dict)  # proposed, by generator
    verified_pairs: int = 0
    pairs_scored: int = 0
    pairs_aligned: int = 0
    pairs_unoverlaid: int = 0
    pairs_passed_chroma_matched: int = 0
    pairs_equalised: int = 0
    second_look_skipped: int = 0
    stars: int = 0  # groups of two or more rows
    rechecked_pairs: int = 0
    kept_centre: int = 0  # stars keeping their centre: a member failed against the preferred
    merged_groups: int = 0  # stars joined to another whose keeper all their rows match
    seconds: dict[str, float] = field(default_factory=dict)
    partitions: int = 1

    def to_json(self) -> dict[str, Any]:
        if not self.verified:
            return {"verified": False, "partitions": self.partitions}
        return super().to_json()

    @classmethod
    def from_json(cls: type[R], data: dict[str, Any], strict: bool = False) -> R:
        if data.get("verified") is False:
            return cls(verified=False, partitions=data["partitions"] if strict
                       else data.get("partitions", 1))
        return super().from_json(data, strict)


@dataclass
class LargeGroup(StageReport):
    size: int = 0
    first: str = ""  # the group's first key


@dataclass
class BitStats(StageReport):
    """Bit usage and bucket sizes of the hashes (`hashing.code_stats`)."""

    images: int = 0
    distinct_hashes: int = 0
    largest_bucket: int = 0
    largest_bucket_share: float = 0.0
    dead_bits: int = 0
    constant_bits: int = 0
    bit_rate_min: float = 0.0
    bit_rate_mean: float = 0.0
    bit_rate_max: float = 0.0
    bits_per_hash_mean: float = 0.0
    bit_rates: list[float] = field(default_factory=list)


@dataclass
class Files(StageReport):
    """The output files' names (the model's path when it was given, not trained here)."""

    hashes: str = "hashes.npy"
    duplicates: str = "duplicates.csv"
    sheet: str = "duplicates.png"
    model: str | None = None


@dataclass
class DedupReport(StageReport):
    source: str = ""
    out: str = ""
    dry_run: bool = False
    images: int = 0
    kept: int = 0
    removed: int = 0
    removed_as_duplicate_of_against: int = 0
    removed_share: float = 0.0
    groups_with_duplicates: int = 0
    largest_groups: list[LargeGroup] = field(default_factory=list)
    group_size_histogram: dict[int, int] = field(default_factory=dict)  # str keys once read
    distance_histogram: dict[int, int] = field(default_factory=dict)
    grouping: Grouping = field(default_factory=Grouping)
    parameters: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # the hash model's path and training
    bits: BitStats = field(default_factory=BitStats)
    against_images: int = 0
    output_shards: int | None = None  # None: a dry run
    ingest: dict[str, Any] | None = None  # SRC's ingest, when it was no shard directory
    timings_s: dict[str, float] = field(default_factory=dict)
    hash_images_per_s: float = 0.0
    files: Files = field(default_factory=Files)
