"""The Ray engine, on a real 2-node Ray cluster inside a network namespace holding only
loopback: Ray advertises the machine's external address wherever it can find one, and a
test must never do that. The checks themselves are in ray_cluster.py, which this test runs
under `unshare -n` (pytest does not collect it on its own)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


# the inner run has its own limit (1200 s, below): the suite's 600 s would cut it first
@pytest.mark.timeout(1260)
def test_ray_engine_on_a_two_node_cluster_in_a_loopback_namespace(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (`make install` adds the ray extra)")
    if not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs unshare and ip (util-linux, iproute2) to isolate Ray's network")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace (unshare -n needs root): "
                    f"{probe.stderr.strip()}")
    # Ray workers import the test helpers (tests/<package>/test_*.py) by module name
    helpers = [str(folder) for folder in sorted(TESTS.parent.iterdir())
               if folder.is_dir() and not folder.name.startswith((".", "_"))]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [*helpers, os.environ.get("PYTHONPATH")]))}
    inner = (f"ip link set lo up && exec {sys.executable} -m pytest -x -q -p no:cacheprovider "
             f"--basetemp={tmp_path / 'inner'} {TESTS / 'ray_cluster.py'}")
    run = subprocess.run(["unshare", "-n", "sh", "-c", inner], env=env, capture_output=True,
                         text=True, timeout=1200, cwd=TESTS.parent.parent)
    output = run.stdout[-6000:] + run.stderr[-3000:]
    assert run.returncode == 0, output
    assert " passed" in run.stdout and "skipped" not in run.stdout, output
