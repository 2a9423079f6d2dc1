"""The faces stage's settings: how a crawl list is read, how its images are fetched, which
faces are kept. Imports no torch, OpenCV or requests: `dcgan-data faces --help` reads it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcgan_data import __version__
from dcgan_data.core.checks import Range
from dcgan_data.core.limits import MAX_FILE_BYTES, MAX_PIXELS
from dcgan_data.core.options import StageOptions, setting

COUNT = Range(1, integer=True)
DETECTORS = ("mtcnn", "haar")
# A score is a probability for MTCNN and a count of merged neighbour windows for Haar.
DEFAULT_MIN_SCORE = {"mtcnn": 0.9, "haar": 5.0}
# The columns (JSON fields) looked for, in this order, when the options name none.
URL_FIELDS = ("url", "URL", "link", "image_url")
LABEL_FIELDS = ("name", "label", "caption")
# Of one image, fetched or read from a local path (ingest reads local files as faces does).
DEFAULT_MAX_BYTES = MAX_FILE_BYTES
USER_AGENT = f"dcgan-data/{__version__} (face crawl for DCGAN training; python-requests)"


def _one_of(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}"


@dataclass(frozen=True)
class FetchOptions(StageOptions):
    """How the images a crawl list names are fetched (an http(s) URL) or read (a path)."""

    timeout: float = setting(10.0, "Seconds allowed per request (headers and body).",
                             Range(0.1))
    retries: int = setting(2, "Retries after a timeout, 429 or 5xx, with doubling back-off.",
                           Range(0, 10, integer=True))
    backoff: float = setting(1.0, "Seconds before the first retry, doubled after each.",
                             Range(0))
    max_bytes: int = setting(DEFAULT_MAX_BYTES,
                             "Largest image accepted; longer bodies are cut off.", COUNT)
    max_redirects: int = setting(5, "Redirects followed before giving up on a URL.",
                                 Range(0, 30, integer=True))
    respect_robots: bool = setting(
        True, "Skip images whose response carries X-Robots-Tag: noai / noimageai "
              "(--ignore-robots-headers fetches them).",
        flag="--ignore-robots-headers", default_text="respect them")
    allow_private_addresses: bool = setting(
        False, "Also fetch from loopback, private and link-local hosts (a list you trust).",
        flag="")
    local_root: Path | None = setting(None, "Local paths in the list must lie below this "
                                            "folder.", default_text="the list's folder")
    base_dir: Path = Path()  # relative local paths are read from here (the stage: the list's)
    user_agent: str = USER_AGENT


@dataclass(frozen=True)
class FaceOptions(StageOptions):
    """Which faces are kept and how they are cut, how the crawl list is read and split into
    units, and how its images are fetched (`fetch`)."""

    detector: str = setting("mtcnn", "MTCNN (ONNX on OpenCV DNN) or OpenCV's Haar cascade.",
                            choices=DETECTORS)
    min_face: int = setting(64, "Smallest face side kept, in source-image pixels.", COUNT)
    min_score: float | None = setting(
        None, "Smallest detector score kept.", Range(),
        default_text=", ".join(f"{s:g} for {d}" for d, s in DEFAULT_MIN_SCORE.items()))
    margin: float = setting(0.25, "Grow the square crop by this fraction of the face on each "
                                  "side.", Range(0))
    size: int = setting(64, "Side of the saved crops.", Range(8, integer=True))
    workers: int = setting(16, "Fetch threads per process.", Range(1, 512, integer=True))
    processes: int | None = setting(None, "Processes detecting faces, one unit each.",
                                    Range(1, 256, integer=True), default_text="CPU count")
    lines_per_shard: int = setting(
        256, "Crawl-list entries (blank and # comment lines aside) per work unit, one shard "
             "each; a killed run redoes one unit.", COUNT)
    keep_originals: Path | None = setting(
        None, "Also keep every fetched image's bytes in this directory.")
    max_pixels: int = setting(MAX_PIXELS, "Largest decoded image, in pixels.", COUNT)
    url_col: str | None = setting(
        None, "Column (field) naming the image in a .parquet/.tsv/.csv/.jsonl list.",
        default_text=_one_of(URL_FIELDS))
    label_col: str | None = setting(None, "Column (field) kept as the label.",
                                    default_text=_one_of(LABEL_FIELDS))
    # 100M URLs, a whole LAION-400M in one file, fit; a compressed file of blank lines that
    # would fill the disk does not.
    max_list_bytes: int = setting(
        16 << 30, "Largest decompressed .gz/.bz2/.xz/.zst list (or Parquet list as text).",
        COUNT)
    fetch: FetchOptions = FetchOptions()

    def score_threshold(self) -> float:
        """`min_score`, or the detector's own default."""
        if self.min_score is not None:
            return self.min_score
        return DEFAULT_MIN_SCORE[self.detector]
