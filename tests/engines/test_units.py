"""The unit runner on local processes: results, retries, a killed worker, failure records."""

import os
import signal
import sys
from functools import partial
from pathlib import Path

import pytest

from dcgan_data.core.errors import DcganDataError, InputError
from dcgan_data.core.stage import Failures
from dcgan_data.engines.local import LocalEngine
from dcgan_data.engines.runner import UnitError, make_engine, run_units


def square(unit):
    return unit * unit


def add_context(context, unit):
    return context["offset"] + unit


def fail_on_three(unit):
    if unit == 3:
        raise ValueError("three is bad")
    return unit


def bad_input(unit):
    raise InputError("list.csv: the header has no url column")


def die_once(marks: str, unit):
    """Kills its own process the first time it meets unit 2 (the mark survives the death)."""
    mark = Path(marks) / f"{unit}.died"
    if unit == 2 and not mark.exists():
        mark.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return unit * 10


def always_die(unit):
    if unit == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return unit


@pytest.mark.parametrize("workers", [1, 2])
def test_every_unit_once_with_its_result(workers):
    got = dict(run_units(square, range(7), LocalEngine(workers)))
    assert got == {u: u * u for u in range(7)}


@pytest.mark.parametrize("workers", [1, 2])
def test_context_reaches_every_worker(workers):
    got = dict(run_units(add_context, [1, 2, 3], LocalEngine(workers), context={"offset": 100}))
    assert got == {1: 101, 2: 102, 3: 103}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_raising_unit_is_retried_then_recorded(workers):
    got = dict(run_units(fail_on_three, range(5), LocalEngine(workers), retries=1))
    assert {u: r for u, r in got.items() if u != 3} == {0: 0, 1: 1, 2: 2, 4: 4}
    assert got[3] == UnitError("error", "ValueError: three is bad", 2)


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_input_stops_the_run_at_once(workers):
    with pytest.raises(InputError, match="no url column"):
        list(run_units(bad_input, range(4), LocalEngine(workers)))


def test_a_killed_worker_is_replaced_and_its_unit_rerun(tmp_path):
    got = dict(run_units(partial(die_once, str(tmp_path)), range(6), LocalEngine(2)))
    assert got == {u: u * 10 for u in range(6)}
    assert (tmp_path / "2.died").exists()


def test_a_unit_that_always_kills_its_worker_is_recorded_not_fatal():
    got = dict(run_units(always_die, range(4), LocalEngine(2), retries=1))
    assert {u: r for u, r in got.items() if u != 1} == {0: 0, 2: 2, 3: 3}
    assert got[1].reason == "worker_lost" and got[1].attempts == 2


def test_failures_count_exactly_and_keep_few_examples():
    one, other = Failures(examples=2), Failures(examples=2)
    for i in range(5):
        one.add("timeout", f"line {i}")
    other.add("http_404", "line 9")
    other.add("timeout", "line 7")
    one.merge(other.as_dict())
    assert one.as_dict() == {
        "failed": 7,
        "failed_by_reason": {"timeout": 6, "http_404": 1},
        "failed_examples": {"timeout": ["line 0", "line 1"], "http_404": ["line 9"]},
    }


def test_engine_names(monkeypatch):
    assert make_engine(None, 3).name == "local" and make_engine("local", 3).workers == 3
    with pytest.raises(InputError, match="--engine must be one of local, ray"):
        make_engine("spark")
    with pytest.raises(InputError, match="--ray-address needs --engine ray"):
        make_engine("local", ray_address="auto")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(DcganDataError, match=r"^--engine ray needs Ray: pip install 'ray>=2\.9'"):
        make_engine("ray")
