"""De-duplication by semantic hash, as in the DCGAN paper, with verified candidates.

    open SRC (ingest it unless it is shards) -> train (or load) the hash model -> scan: hash
    every row, keep its thumbnails -> group: candidate pairs, verified (or the paper's rule:
    equal hashes) -> stars of verified pairs, one row kept per group -> write the kept rows,
    one output shard per input shard -> report

Each phase is a module of this package: `inputs`, `scan`, `candidates` (`grouping`,
`neighbours`), `verify` (`features`, `alignment`, `overlay`, `logistic`, `selffit`; `blank`:
blank rows, by colour), `decide` (`stars`), `write`, `report`. The hash model trains here,
in the driver. Hashing every row and writing the kept rows run as units on the unit runner
(`engines.runner`: local processes or a Ray cluster; each output shard is written by the
worker that made it); the sort of shared hashes runs in one piece or in partitions
(`partition`).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from dcgan_data.core.devices import resolve_device
from dcgan_data.core.files import locks_output
from dcgan_data.core.processes import reuse_freed_memory
from dcgan_data.core.shards import ShardWriter
from dcgan_data.core.stage import Phases
from dcgan_data.dedup import partition
from dcgan_data.dedup.decide import Decision, decide
from dcgan_data.dedup.inputs import Inputs, check_paths, hash_model, open_inputs
from dcgan_data.dedup.options import DedupOptions
from dcgan_data.dedup.report import BitStats, DedupReport, Files, LargeGroup
from dcgan_data.dedup.scan import Rows, scan_rows
from dcgan_data.dedup.write import (
    CSV,
    HASHES,
    MODEL,
    REPORT,
    SHEET,
    removed_distances,
    run_parameters,
    write_outputs,
)
from dcgan_data.engines.runner import Engine, make_engine
from dcgan_data.hashmodel.options import HashConfig

__all__ = ["CSV", "HASHES", "MODEL", "REPORT", "SHEET", "dedup"]


def dedup(src: str | os.PathLike, out: str | os.PathLike, options: DedupOptions | None = None,
          config: HashConfig | None = None, engine: Engine | str | None = None,
          **settings: Any) -> dict[str, Any]:
    """De-duplicate `src` into `out` as `options` say (the defaults, changed by `settings`:
    any DedupOptions field); `config`: the hash model's training. Returns the report (also
    out/dedup_report.json), as its JSON.

    The defaults propose candidates from the hash, its probe hashes and nearest neighbours,
    and remove only verified duplicates; `paper_rule=True` is the paper's rule: equal hashes
    are duplicates. `engine` runs the ingest of a non-shard SRC, the hashing pass (on the
    CPU; with a GPU `device` it runs here) and the hash partitions ("local": `workers`
    processes, or "ray")."""
    options = (options or DedupOptions()).replace(**settings)  # refuses bad values first
    return _dedup(Path(src), Path(out), options.applied(), config or HashConfig(),
                  engine).to_json()


@locks_output("out")  # one run per output directory
def _dedup(src: Path, out: Path, options: DedupOptions, config: HashConfig,
           engine: Engine | str | None) -> DedupReport:
    device = resolve_device(options.device)
    check_paths(src, out, options.against, options.dry_run)
    partition.remove_stale_spills(out)  # a killed run's partition files (OUT is ours now)
    engine = make_engine(engine, options.workers)
    if options.workers:
        torch.set_num_threads(options.workers)
    if device == "cpu":
        reuse_freed_memory()  # training and verification allocate the same blocks all along
    phases = Phases()
    with phases.timed("ingest"):
        inputs = open_inputs(src, out, options, device, engine)
    with phases.timed("train"):
        model = hash_model(inputs.shards, out, options.hash_model, config, device, options.seed)
    with phases.timed("hash"):
        rows = scan_rows(model[0], inputs, options.probe, device, engine, out,
                         options.max_bucket_share)
    with phases.timed("group"):
        decision = decide(rows, inputs, options, device, engine, out)
    params = run_parameters(options, inputs, rows, decision)
    # refuses an OUT holding shards of another run, before anything is overwritten
    writer = None if options.dry_run else ShardWriter(out, (inputs.size,) * 2 + (3,), params)
    with phases.timed("write"):
        written = write_outputs(out, inputs, rows, decision, model, writer, engine)
    report = _report(src, out, options, inputs, rows, decision, written, phases)
    report.parameters = {**params, "model": model[1].get("model"), "device": device,
                         "workers": engine.workers, "engine": engine.name,
                         "partitions": options.partitions, "seed": options.seed,
                         "max_bucket_share": options.max_bucket_share,
                         "config": asdict(model[0].config)}
    report.model = model[1]
    report.files.model = MODEL if model[1].get("trained") else model[1].get("model")
    report.write(out / REPORT)
    return report


def _report(src: Path, out: Path, options: DedupOptions, inputs: Inputs, rows: Rows,
            decision: Decision, written: int | None, phases: Phases) -> DedupReport:
    """The counts and histograms of the run (its parameters and model are added after)."""
    removed, sizes, keys = decision.removed, decision.group_sizes, inputs.keys
    timings = {name: round(s, 3) for name, s in phases.seconds.items()}
    return DedupReport(
        source=str(src), out=str(out), dry_run=options.dry_run, images=rows.own,
        kept=rows.own - len(removed), removed=len(removed),
        removed_as_duplicate_of_against=int((decision.kept_as[removed] >= rows.own).sum()),
        removed_share=round(len(removed) / rows.own, 6),
        groups_with_duplicates=sum(1 for s in sizes.values() if s > 1),
        largest_groups=[LargeGroup(size, keys[label])
                        for label, size in sizes.most_common(10) if size > 1],
        group_size_histogram=dict(sorted(Counter(sizes.values()).items())),
        distance_histogram=dict(sorted(Counter(
            removed_distances(rows, decision).tolist()).items())),
        grouping=decision.grouping, bits=BitStats.from_json(rows.stats, strict=True),
        against_images=len(rows.hashes) - rows.own, output_shards=written,
        ingest=inputs.ingest_report and {k: inputs.ingest_report.get(k) for k in
                                         ("images", "failed", "seconds")
                                         if k in inputs.ingest_report},
        timings_s=timings,
        hash_images_per_s=round(len(rows.hashes) / max(phases.seconds["hash"], 1e-9), 1),
        files=Files(hashes=HASHES, duplicates=CSV, sheet=SHEET))
