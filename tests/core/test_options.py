"""Every numeric option refuses NaN, infinities and values out of range before anything runs:
one line naming the option and its range, exit 2, nothing written; the library entries refuse
the same values for Python callers."""

import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from dcgan_data.core import checks
from dcgan_data.core.checks import Range
from dcgan_data.core.errors import InputError
from dcgan_data_cli.main import cli
from dcgan_data_cli.numbers import Checked

NAN, INF = float("nan"), float("inf")


def verbs() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}


def option_name(param: click.Parameter) -> str:
    return max(param.opts, key=len)


def out_of_range(allowed: Range) -> list[str]:
    """Values just outside `allowed`, as typed."""
    values = []
    if allowed.low is not None:
        values.append(str(allowed.low if allowed.low_open else allowed.low - 1))
    if allowed.high is not None:
        values.append(str(allowed.high if allowed.high_open else allowed.high + 1))
    if allowed.even:
        values.append(str(allowed.low + 1))
    if allowed.integer:
        values.append("2.5")
    return values


# options whose value is a number or a word ('auto', a folder): checked by a callback
WORDS = {("dedup", "--partitions"): ["0", "-1", "nan", "inf"],
         ("audit", "--holdout"): ["nan", "inf", "-inf", "0", "-1", "2.5"]}


def cases() -> list[tuple[str, str, str]]:
    found = [(verb, option_name(p), value) for verb, command in verbs().items()
             for p in command.params if isinstance(p.type, Checked)
             for value in ["nan", "inf", "-inf", *out_of_range(p.type.allowed)]]
    return found + [(verb, name, value) for (verb, name), values in WORDS.items()
                    for value in values]


def command_line(verb: str, tmp: Path) -> list[str]:
    """The verb with its required arguments; everything it could write lies under tmp."""
    out, src, run = str(tmp / "out"), str(tmp / "src"), str(tmp / "run")
    crawl = tmp / "list.txt"
    crawl.write_text("https://example.com/a.jpg\n")
    return [verb, *{
        "pack": [str(tmp / "a.jpg"), "-o", out],
        "ingest": [src, "-o", out],
        "inspect": [src, "--sheet", str(tmp / "out.png")],
        "dedup": [src, "-o", out],
        "faces": [str(crawl), "-o", out],
        "train": [src, "-o", out],
        "sample": [run, "-o", str(tmp / "out.png")],
        "fid": [run, "--real", src],
        "audit": [run, "--train", src, "-o", out],
        "export": [src, "-o", out, "--format", "folder"],
    }[verb]]


def test_every_number_option_of_every_verb_has_a_range():
    plain = [(verb, option_name(p)) for verb, command in verbs().items()
             for p in command.params
             if isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType))]
    assert plain == []
    checked = {verb for verb, _, _ in cases()}
    assert checked == {"pack", "ingest", "inspect", "dedup", "faces", "train", "sample", "fid",
                       "audit", "export"}


def test_every_default_lies_in_its_range():
    for command in verbs().values():
        for p in command.params:
            if isinstance(p.type, Checked) and isinstance(p.default, (int, float)):
                assert p.type.allowed.holds(p.default), (command.name, p.name)


@pytest.mark.parametrize("verb,name,value", cases())
def test_a_bad_number_is_refused_in_one_line_and_nothing_is_written(tmp_path, verb, name,
                                                                      value):
    args = command_line(verb, tmp_path)
    before = set(tmp_path.iterdir())
    result = CliRunner().invoke(cli, [*args, name, value], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {name}"), result.output
    param = next(p for p in verbs()[verb].params if name in p.opts)
    if isinstance(param.type, Checked):
        assert lines[0].startswith(f"error: {name} must be {param.type.allowed.describe()}, "
                                   f"not ")
    assert set(tmp_path.iterdir()) == before


@pytest.mark.parametrize("args", [
    ["dedup", "--verify-threshold", "nan"], ["dedup", "--workers", "-1"],
    ["faces", "--min-score", "nan"], ["faces", "--timeout", "nan"],
    ["faces", "--margin", "nan"], ["train", "--seed", "-1"], ["train", "--lr", "nan"],
    ["audit", "--holdout", "nan"], ["audit", "--holdout", "inf"], ["audit", "--seed", "-1"],
])
def test_the_reported_cases_exit_2_with_one_line_on_stderr(tmp_path, args):
    verb, name, value = args
    command = [sys.executable, "-m", "dcgan_data", *command_line(verb, tmp_path), name, value]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"error: {name}")
    assert not (tmp_path / "out").exists()


# --- the library entries ------------------------------------------------------------------


def test_range_words_and_membership():
    assert checks.COUNT.describe() == ">= 1 (a whole number)"
    assert Range(0, 1, low_open=True).describe() == "> 0 and <= 1"
    assert Range(-1, 1).describe() == "between -1 and 1"
    assert Range().describe() == "a finite number"
    assert checks.COUNT.holds(np.int64(3)) and Range(0).holds(np.float32(0.5))
    for value in (NAN, INF, -INF, True, 2.0, "3", None, 0):
        assert not checks.COUNT.holds(value)
    assert not Range().holds(NAN) and Range().holds(-1e300)
    assert not checks.SIDE.holds(9) and checks.SIDE.holds(10**30)
    with pytest.raises(InputError, match=r"^--lr must be > 0, not nan$"):
        checks.POSITIVE.check("--lr", NAN)


def test_options_dataclasses_refuse_bad_values():
    from dcgan_data.faces.options import FaceOptions, FetchOptions
    from dcgan_data.hashmodel.hashing import HashConfig
    from dcgan_data.train.options import TrainOptions

    for make, field in [(FaceOptions, "min_score"), (FaceOptions, "margin"),
                        (FetchOptions, "timeout"), (TrainOptions, "lr"),
                        (TrainOptions, "beta1"), (HashConfig, "dropout")]:
        with pytest.raises(InputError, match=f"^--{field.replace('_', '-')} must be"):
            make(**{field: NAN})
    with pytest.raises(InputError, match="--beta1"):
        TrainOptions(beta1=1.0)  # Adam refuses a beta of 1
    with pytest.raises(InputError, match="--seed"):
        TrainOptions(seed=-1)


def stage_calls(tmp: Path):
    from dcgan_data.audit.stage import audit
    from dcgan_data.dedup.stage import dedup
    from dcgan_data.export.stage import export
    from dcgan_data.faces.stage import faces
    from dcgan_data.ingest.pack import pack_images
    from dcgan_data.ingest.stage import ingest
    from dcgan_data.train.quality import evaluate_run
    from dcgan_data.train.sampling import write_grid
    from dcgan_data.train.stage import train

    src, out, run = tmp / "src", tmp / "out", tmp / "run"
    return [
        ("--verify-threshold", lambda: dedup(src, out, verify_threshold=NAN)),
        ("--workers", lambda: dedup(src, out, workers=-1)),
        ("--seed", lambda: dedup(src, out, seed=2**32)),
        ("--lines-per-shard", lambda: faces(tmp / "list.txt", out, lines_per_shard=0)),
        ("--processes", lambda: faces(tmp / "list.txt", out, processes=0)),
        ("--seed", lambda: train(src, out, seed=-1)),
        ("--lr", lambda: train(src, out, lr=NAN)),
        ("--holdout", lambda: audit(run, src, out, holdout="inf")),
        ("--holdout", lambda: audit(run, src, out, holdout=NAN)),
        ("--seed", lambda: audit(run, src, out, seed=-1)),
        ("--alpha", lambda: audit(run, src, out, alpha=NAN)),
        ("--count", lambda: write_grid(run, tmp / "grid.png", count=0)),
        ("--images", lambda: evaluate_run(run, real=src, images=INF)),
        ("--rows-per-part", lambda: export(src, out, "folder", rows_per_part=0)),
        ("--workers", lambda: ingest(src, out, workers=0)),
        ("--size", lambda: ingest(src, out, size=63)),
        ("--quality", lambda: pack_images([str(src)], out, quality=101)),
    ]


def test_stage_entries_refuse_bad_values_before_writing_anything(tmp_path):
    (tmp_path / "list.txt").write_text("https://example.com/a.jpg\n")
    for name, call in stage_calls(tmp_path):
        with pytest.raises(InputError, match=f"^{name}"):
            call()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["list.txt"], name

