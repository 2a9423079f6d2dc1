"""The stage skeleton: options dataclasses, typed reports, timed phases, the unit loop."""

from __future__ import annotations

import dataclasses
import json
import math

import click
import pytest
from click.testing import CliRunner

from dcgan_data.core.checks import Range
from dcgan_data.core.errors import InputError
from dcgan_data.core.options import StageOptions, setting
from dcgan_data.core.report import StageReport
from dcgan_data.core.stage import Failures, Phases, completed_units
from dcgan_data.engines.local import LocalEngine
from dcgan_data_cli.options import option_from


@dataclasses.dataclass(frozen=True)
class ToyOptions(StageOptions):
    rate: float = setting(0.5, "How fast.", Range(0, 1))
    mode: str = setting("fast", "Which way.", choices=("fast", "slow"))
    verify: bool = setting(True, "Check each.", flag="--no-verify")
    dry_run: bool = setting(False, "Write nothing.")
    size: int | None = setting(None, "Side in px.", Range(8, 512, integer=True),
                               default_text="the input's")


def test_options_refuse_values_out_of_range_nan_and_unknown_choices():
    assert ToyOptions().rate == 0.5
    for bad in (math.nan, math.inf, -0.1, 2):
        with pytest.raises(InputError, match="--rate"):
            ToyOptions(rate=bad)
    with pytest.raises(InputError, match="--mode must be one of fast, slow"):
        ToyOptions(mode="medium")
    with pytest.raises(InputError, match="--size"):
        ToyOptions(size=7)
    assert ToyOptions(size=None).size is None
    with pytest.raises(InputError):
        ToyOptions().replace(rate=3)


def test_cli_options_take_default_help_and_range_from_the_field():
    @click.command()
    @option_from(ToyOptions, "rate")
    @option_from(ToyOptions, "mode")
    @option_from(ToyOptions, "verify")
    @option_from(ToyOptions, "dry_run")
    @option_from(ToyOptions, "size")
    def toy(**kwargs):
        click.echo(json.dumps(dataclasses.asdict(ToyOptions(**kwargs))))

    runner = CliRunner()
    got = json.loads(runner.invoke(toy, []).output)
    assert got == ToyOptions.defaults()
    got = json.loads(runner.invoke(toy, ["--rate", "0.25", "--no-verify", "--dry-run"]).output)
    assert (got["rate"], got["verify"], got["dry_run"]) == (0.25, False, True)
    refused = runner.invoke(toy, ["--rate", "nan"])
    assert refused.exit_code != 0
    shown = runner.invoke(toy, ["--help"]).output
    assert "How fast." in shown and "[default: 0.5]" in shown and "[default: the input's]" in shown
    fields = {p.name: p.options_field for p in toy.params}
    assert fields["rate"] == (ToyOptions, "rate")


@dataclasses.dataclass
class Inner(StageReport):
    pairs: int
    share: float | None = None


@dataclasses.dataclass
class Outer(StageReport):
    kept: int
    grouping: Inner
    groups: list[Inner] = dataclasses.field(default_factory=list)
    note: str = ""


def test_typed_report_round_trips_and_strict_reading_names_a_missing_key(tmp_path):
    report = Outer(kept=3, grouping=Inner(pairs=2, share=0.5), groups=[Inner(pairs=1)])
    path = report.write(tmp_path / "r.json")
    assert json.loads(path.read_text()) == {
        "kept": 3, "grouping": {"pairs": 2, "share": 0.5},
        "groups": [{"pairs": 1, "share": None}], "note": ""}
    assert Outer.read(path, strict=True) == report
    old = {"kept": 3, "grouping": {"pairs": 2}}
    assert Outer.from_json(old).grouping.share is None
    with pytest.raises(InputError, match="'share'"):
        Outer.from_json(old, strict=True)
    with pytest.raises(InputError, match="'grouping'"):
        Outer.from_json({"kept": 1})


def _half(unit: int) -> int:
    if unit == 3:
        raise ValueError("three is bad")
    return unit // 2


def test_completed_units_records_failed_units_and_yields_the_rest():
    lost = Failures()
    done = dict(completed_units(_half, [1, 2, 3, 4], LocalEngine(1), lost,
                                where=lambda u: f"unit {u}"))
    assert done == {1: 0, 2: 1, 4: 2}
    record = lost.as_dict()
    assert record["failed"] == 1 and "unit 3" in record["failed_examples"]["error"][0]


def test_phases_add_up_each_named_phase():
    phases = Phases()
    with phases.timed("read"):
        pass
    with phases.timed("read"):
        pass
    with phases.timed("write"):
        pass
    assert list(phases.seconds) == ["read", "write"]
    assert phases.elapsed() >= sum(phases.seconds.values())
