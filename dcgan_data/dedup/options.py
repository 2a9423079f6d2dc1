"""dedup's settings: each one's default, range and help, stated once (the CLI reads them).

The hash model's own settings are `dcgan_data.hashmodel.options.HashConfig`. Imports no
torch, so that `dcgan-data dedup --help` stays quick.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcgan_data.core.checks import COUNT, SEED, SIDE, Range
from dcgan_data.core.errors import InputError
from dcgan_data.core.options import StageOptions, option_name, setting

SELF_FIT_MIN_ROWS = 300  # fewer rows: the fixed model decides alone (too few to learn from)
MAX_RADIUS = 16  # beyond this the blocks get so short that the multi-index is brute force
KEEP_POLICIES = ("first", "largest")
DEVICES = ("auto", "cpu", "cuda")


def parse_partitions(name: str, value: int | str) -> int | str:
    """The partitions: "auto", or a count (a number, or the text of one)."""
    if value == "auto":
        return value
    number = int(value) if isinstance(value, str) and value.isdecimal() else value
    if not COUNT.holds(number):
        raise InputError(f"{name} must be 'auto' or a whole number >= 1, not {value}")
    return number


@dataclass(frozen=True)
class DedupOptions(StageOptions):
    """How dedup proposes, verifies and removes duplicates, and where its work runs."""

    size: int | None = setting(
        None, "Side of the output images, at most the input's.",
        SIDE,
        default_text="the input shards' side; 64 for an LMDB or a folder of images")
    # equal hashes only, as in the paper: precision ~0.99 on near duplicates of real photos;
    # radius 1 finds ~40% more pairs but precision drops to ~0.985 (bench/RESULTS.md)
    radius: int = setting(0, "Also propose hashes within this Hamming distance as candidates "
                             "(0: equal hashes).", Range(0, MAX_RADIUS, integer=True))
    probe: bool = setting(True, "Also propose images whose slightly shifted (up to half a "
                                "pixel of the 32x32 crop) or zoomed (8.5%) versions hash "
                                "equal.", flag="--no-probe")
    neighbours: int = setting(8, "Nearest neighbours by perceptual (DCT) descriptor proposed "
                                 "per image (0: none).", Range(0, integer=True))
    # the costs of lower values: bench/RESULTS.md
    min_cosine: float = setting(0.88, "Similarity (DCT descriptor cosine) a neighbour needs "
                                      "to be proposed; lower finds more rotated and warped "
                                      "copies, at more candidates to verify (see "
                                      "docs/dedup.md).", Range(-1, 1))
    verify: bool = setting(True, "Remove only pairs verified on the images (--no-verify: "
                                 "every candidate pair joins its group).", flag="--no-verify")
    self_fit: bool = setting(
        False, "Decide with a model fitted on SRC itself at run time (synthetic copies and "
               "look-alike crops of its own rows; each pair set against each image's "
               "neighbours), and report the false-removal share the run expects. Measured "
               "no better than the fixed model on held-out photos (see docs/dedup.md); sets "
               f"under {SELF_FIT_MIN_ROWS} images use the fixed model.", flag="--no-self-fit")
    # the paper's rate of false pairs among those accepted
    max_false_share: float = setting(
        0.01, "With --self-fit: the share of removals allowed to be false by the run's own "
              "estimate; the threshold is the lowest that keeps to it.",
        Range(0, 1, low_open=True, high_open=True))
    verify_threshold: float | None = setting(
        None, "Log-odds a pair needs to count as duplicates, overriding the chosen threshold "
              "(of the fixed model; with --self-fit, of the model fitted on SRC); higher: "
              "fewer, surer removals.", Range())
    mirrors: bool = setting(False, "Also treat mirror images as duplicates (a mirror is a new "
                                   "image for GAN training; off by default).", flag="")
    paper_rule: bool = setting(False, "The DCGAN paper's rule alone: equal hashes are "
                                      "duplicates (no probes, no neighbours, no "
                                      "verification).", flag="")
    keep: str = setting("first", "Which image of a group to keep: the first key, or the "
                                 "largest source.", choices=KEEP_POLICIES)
    hash_model: Path | None = setting(None, "Reuse a trained hash model (hash_model.pt) "
                                            "instead of training one.")
    against: Path | None = setting(None, "Also remove images of SRC that duplicate images of "
                                         "this shard set (e.g. SRC = train, OTHER = test).")
    dry_run: bool = setting(False, "Write the report, CSV and sheet, but no shards.", flag="")
    device: str = setting("auto", "auto: cuda when available, else cpu.", choices=DEVICES)
    workers: int | None = setting(None, "Processes for ingest and hashing, threads for "
                                        "training and verification.", COUNT,
                                  default_text="all cores; 1 on a busy shared machine")
    # auto: one in-memory sort unless the hashes outgrow the memory
    partitions: int | str = setting(
        "auto", "Group the shared hashes in N partitions, one after another here or in "
                "parallel on Ray, so that no process sorts them all (auto: as many as the "
                "memory available needs). The output is the same for every N.")
    seed: int = setting(0, "Seed of the hash model's training and of the crops it trains on, "
                           "and of the rows the decision is fitted on: the same seed on the "
                           "same images gives the same output.", SEED)
    max_bucket_share: float = setting(0.5, "Refuse to run when one hash holds more than this "
                                           "share of the images.", Range(0, 1, low_open=True))

    def __post_init__(self) -> None:
        super().__post_init__()
        # a count given as text ("8") is stored as the number
        object.__setattr__(self, "partitions",
                           parse_partitions(option_name("partitions"), self.partitions))

    def applied(self) -> DedupOptions:
        """The options the run follows: the paper's rule turns off probes, neighbours and
        verification."""
        if not self.paper_rule:
            return self
        return self.replace(probe=False, neighbours=0, verify=False)
