"""Ray engine checks on a 2-node local Ray cluster. Run only by test_units_ray.py, inside a
network namespace whose one interface is loopback (so Ray binds and advertises 127.0.0.1)."""

import filecmp
import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from functools import partial

import pytest

if [name for _, name in socket.if_nameindex()] != ["lo"]:
    pytest.skip("run through test_units_ray.py (needs a loopback-only network namespace)",
                allow_module_level=True)

import numpy as np  # noqa: E402
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402
from test_crawl import ImageServer  # noqa: E402
from test_faces import crawl_list  # noqa: E402
from test_ingest import bad_values, real_values, write_lmdb  # noqa: E402
from test_partition import edge_set, planted_probes  # noqa: E402
from test_units import bad_input, die_once, fail_on_three  # noqa: E402

from dcgan_data.audit import stage as au  # noqa: E402
from dcgan_data.core.errors import InputError  # noqa: E402
from dcgan_data.core.shards import ShardSet  # noqa: E402
from dcgan_data.dedup import stage as dd  # noqa: E402
from dcgan_data.dedup.partition import shared_hash_pairs  # noqa: E402
from dcgan_data.engines.local import LocalEngine  # noqa: E402
from dcgan_data.engines.ray import RayEngine  # noqa: E402
from dcgan_data.engines.runner import UnitError, run_units  # noqa: E402
from dcgan_data.faces.stage import faces  # noqa: E402
from dcgan_data.hashmodel.hashing import HashConfig  # noqa: E402
from dcgan_data.ingest import chunks as ing  # noqa: E402
from dcgan_data.ingest.stage import ingest  # noqa: E402
from dcgan_data.testing.photos import photo_crops, write_shards  # noqa: E402

NODE = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 100 << 20}
REPORT_COUNTS = ("read", "written", "failed", "failed_by_reason", "shards", "entries",
                 "fetched", "decoded", "images_with_face", "boxes", "kept")


@pytest.fixture(scope="module")
def cluster():
    nodes = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    nodes.add_node(**NODE)
    ray.init(address=nodes.address, log_to_driver=False)
    assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"] * 2
    yield nodes
    ray.shutdown()
    nodes.shutdown()


@pytest.fixture(scope="module")
def server():
    srv = ImageServer()
    yield srv
    srv.close()


def node_of(unit):
    time.sleep(0.3)  # long enough that both nodes get units
    return ray.get_runtime_context().get_node_id()


def same_outputs(one, other) -> None:
    """Shards, keys, source sizes and manifest byte for byte."""
    names = sorted(p.name for p in one.iterdir() if p.suffix in (".npy", ".txt")
                   or p.name == "manifest.json")
    assert names and names == sorted(p.name for p in other.iterdir()
                                     if p.suffix in (".npy", ".txt") or p.name == "manifest.json")
    match, mismatch, errors = filecmp.cmpfiles(one, other, names, shallow=False)
    assert mismatch == [] and errors == []


def counts(report: dict) -> dict:
    return {k: report[k] for k in REPORT_COUNTS if k in report}


def test_units_run_on_both_nodes(cluster):
    got = dict(run_units(node_of, range(8), RayEngine(cluster.address)))
    assert sorted(got) == list(range(8)) and len(set(got.values())) == 2


def test_a_worker_killed_mid_unit_is_recovered(cluster, tmp_path):
    got = dict(run_units(partial(die_once, str(tmp_path)), range(6), RayEngine(cluster.address)))
    assert got == {u: u * 10 for u in range(6)} and (tmp_path / "2.died").exists()


def test_a_raising_unit_is_retried_then_recorded(cluster):
    got = dict(run_units(fail_on_three, range(5), RayEngine(cluster.address), retries=1))
    assert isinstance(got.pop(3), UnitError) and got == {0: 0, 1: 1, 2: 2, 4: 4}


def test_bad_input_stops_the_run_at_once(cluster):
    with pytest.raises(InputError, match="no url column"):
        list(run_units(bad_input, range(4), RayEngine(cluster.address)))


def test_partitions_group_on_ray_as_in_one_sort(cluster, tmp_path):
    probes = planted_probes()
    got = shared_hash_pairs(probes, 8, RayEngine(cluster.address), spill_dir=tmp_path, band=4)
    want = shared_hash_pairs(probes, 1, band=4)
    assert len(got[0]) == len(want[0]) > 200 and edge_set(*got) == edge_set(*want)
    assert list(tmp_path.iterdir()) == []  # the spilled partitions are removed


def test_ingest_on_ray_equals_local(cluster, tmp_path, monkeypatch):
    write_lmdb(tmp_path / "x_lmdb", real_values(40) + list(bad_values().values()))
    # shards of 4 chunks, decoded on both nodes and finishing in any order
    monkeypatch.setattr(ing, "CHUNK", 4)
    args = dict(rows_per_shard=16, max_pixels=50_000_000)
    local = ingest(tmp_path / "x_lmdb", tmp_path / "local", engine=LocalEngine(2), **args)
    on_ray = ingest(tmp_path / "x_lmdb", tmp_path / "ray", engine=RayEngine(cluster.address),
                    **args)
    assert on_ray["engine"] == "ray" and local["engine"] == "local"
    assert counts(on_ray) == counts(local) and local["failed"] == 6 and local["shards"] == 4
    # (by key and reason: PIL's message for a corrupt header names a memory address)
    assert ([(f["key"], f["reason"]) for f in on_ray["failed_items"]]
            == [(f["key"], f["reason"]) for f in local["failed_items"]])
    same_outputs(tmp_path / "local", tmp_path / "ray")


def test_faces_on_ray_equals_local(cluster, server, tmp_path):
    crawl, options = crawl_list(tmp_path, server.url)
    options = replace(options, keep_originals=None)
    local = faces(crawl, tmp_path / "local", options, lines_per_shard=4, engine=LocalEngine(2))
    on_ray = faces(crawl, tmp_path / "ray", options, lines_per_shard=4,
                   engine=RayEngine(cluster.address))
    assert counts(on_ray) == counts(local) and local["kept"] == 3
    assert on_ray["failed_examples"] == local["failed_examples"]
    same_outputs(tmp_path / "local", tmp_path / "ray")
    for table in ("faces.csv", "labels.csv"):
        assert (tmp_path / "local" / table).read_bytes() == (tmp_path / "ray" / table).read_bytes()


def test_dedup_on_ray_equals_local(cluster, tmp_path):
    crops = photo_crops(200)
    images = np.concatenate([crops, crops[:30]])  # 30 exact copies to remove
    src = write_shards(tmp_path / "src", images, rows_per_shard=60)
    config = HashConfig(min_steps=200, max_steps=200, batch_size=256)
    local = dd.dedup(src, tmp_path / "local", config=config, engine=LocalEngine(2))
    # the Ray run hashes with the model the local run trained, and groups in 4 partitions
    on_ray = dd.dedup(src, tmp_path / "ray", hash_model=tmp_path / "local" / dd.MODEL,
                      engine=RayEngine(cluster.address), partitions=4)
    assert on_ray["parameters"]["engine"] == "ray" and on_ray["grouping"]["partitions"] == 4
    assert local["removed"] == on_ray["removed"] >= 30
    same_outputs(tmp_path / "local", tmp_path / "ray")  # with hashes.npy
    assert ((tmp_path / "local" / dd.CSV).read_bytes()
            == (tmp_path / "ray" / dd.CSV).read_bytes())


def test_audit_on_ray_equals_local(cluster, tmp_path):
    crops = photo_crops(240)
    train = write_shards(tmp_path / "train", crops[:200], rows_per_shard=60)
    generated = write_shards(tmp_path / "generated", np.concatenate([crops[:20], crops[200:]]),
                             [f"gen{i:03d}" for i in range(60)])
    config = HashConfig(min_steps=200, max_steps=200, batch_size=256)
    local = au.audit(generated, train, tmp_path / "local", holdout=30, config=config,
                     device="cpu", engine=LocalEngine(2))
    on_ray = au.audit(generated, train, tmp_path / "ray", holdout=30, device="cpu",
                      model_path=tmp_path / "local" / au.MODEL,
                      engine=RayEngine(cluster.address))
    assert on_ray.parameters.engine == "ray" and local.copies == on_ray.copies >= 15
    assert ((tmp_path / "local" / au.CSV).read_bytes()
            == (tmp_path / "ray" / au.CSV).read_bytes())


def test_a_killed_driver_resumes(cluster, server, tmp_path):
    crawl = tmp_path / "crawl.txt"
    crawl.write_text("".join(f"{server.url}/delay/{i}\n" for i in range(24)))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dcgan_data", "faces", str(crawl), "-o", str(out),
               "--workers", "1", "--lines-per-shard", "4", "--allow-private-addresses",
               "--engine", "ray", "--ray-address", cluster.address]
    run = subprocess.Popen(command)
    deadline = time.monotonic() + 120
    while not (out / "shard-00000.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)  # no clean-up at all
    run.wait()
    done = sorted(int(p.name[6:11]) for p in out.glob("shard-*[0-9].json"))
    assert 1 <= len(done) < 6 and not (out / "manifest.json").exists()
    hits = dict(server.hits)

    # the served photo holds no face: the run says so and exits 1, its outputs all written
    assert subprocess.run(command, timeout=300).returncode == 1
    assert ShardSet(out).num_shards == 6
    report = json.loads((out / "faces_report.json").read_text())
    assert report["units_resumed"] == len(done) and report["options"]["engine"] == "ray"
    for i in range(24):  # the finished units' lines were not fetched again
        if i // 4 in done:
            assert server.hits[f"/delay/{i}"] == hits[f"/delay/{i}"]
    assert subprocess.run(command[:-4] + ["-o", str(tmp_path / "local")],
                          timeout=300).returncode == 1
    same_outputs(out, tmp_path / "local")
