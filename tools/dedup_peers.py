"""Peers of bench/dedup.py that need an environment of their own (imagededup, cleanvision and
fastdup pull a CUDA torch build and other pins this project's venv must not take):

    PEERS_PYTHON=/path/to/venv/bin/python python bench/dedup.py

bench/dedup.py writes each set as a folder of PNGs (row i is `{i:06d}.png`) and runs this
file with PEERS_PYTHON; it writes, as JSON, {method: {threshold: group label per row}}, and
bench/dedup.py scores the labels as it scores its own. Methods:
- imagededup PHash, max_distance_threshold 0-20 (its default is 10);
- cleanvision near_duplicates at its defaults (equal 8x8 pHash);
- fastdup at its defaults (its bundled model, 2 nearest neighbours, components of pairs with
  similarity >= cc_threshold 0.96), with cc_threshold swept 0.80-0.99 over the same graph
  built with 8 neighbours and similarity >= 0.8.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def components(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        parent[root(a)] = root(b)
    return [root(i) for i in range(n)]


def row(name: str) -> int:
    return int(Path(name).stem)


def imagededup_phash(folder: Path, n: int) -> dict[str, list[int]]:
    # imagededup's `methods` package imports its CNN method, whose default argument builds a
    # torchvision model from downloaded weights, so offline the import fails; PHash needs
    # none of it, and a stand-in module takes the CNN module's place
    import types

    sys.modules.setdefault("imagededup.methods.cnn", types.ModuleType("imagededup.methods.cnn"))
    sys.modules["imagededup.methods.cnn"].CNN = None
    from imagededup.methods import PHash

    method = PHash(verbose=False)
    encodings = method.encode_images(image_dir=str(folder))
    out = {}
    for threshold in range(0, 21):
        found = method.find_duplicates(encoding_map=encodings, max_distance_threshold=threshold)
        out[str(threshold)] = components(n, [(row(a), row(b)) for a, dups in found.items()
                                             for b in dups])
    return out


def cleanvision_defaults(folder: Path, n: int) -> dict[str, list[int]]:
    from cleanvision import Imagelab

    lab = Imagelab(data_path=str(folder))
    lab.find_issues({"near_duplicates": {}}, verbose=False)
    sets = lab.info["near_duplicates"]["sets"]
    return {"defaults": components(n, [(row(s[0]), row(m)) for s in sets for m in s[1:]])}


def fastdup_graph(folder: Path, n: int) -> dict[str, list[int]]:
    import fastdup

    out = {}
    with tempfile.TemporaryDirectory() as work:
        defaults = fastdup.create(input_dir=str(folder), work_dir=f"{work}/defaults")
        defaults.run(overwrite=True, verbose=False)
        table = defaults.connected_components()[0]
        labels = dict(zip(table["filename"].map(row), table["component_id"], strict=True))
        out["defaults (0.96)"] = [int(labels.get(i, -1 - i)) for i in range(n)]
        wide = fastdup.create(input_dir=str(folder), work_dir=f"{work}/wide")
        wide.run(overwrite=True, verbose=False, nearest_neighbors_k=8, threshold=0.8)
        pairs = wide.similarity()
        ends = list(zip(pairs["filename_from"].map(row), pairs["filename_to"].map(row),
                        pairs["distance"],
                        strict=True))
        for step in range(80, 100):
            out[f"{step / 100:.2f}"] = components(
                n, [(a, b) for a, b, similarity in ends if similarity >= step / 100])
    return out


def main() -> None:
    folder, n, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    results = {}
    for name, method in (("imagededup phash", imagededup_phash),
                         ("cleanvision", cleanvision_defaults), ("fastdup", fastdup_graph)):
        try:
            results[name] = method(folder, n)
        except Exception as error:  # a peer that does not run here is reported, not fatal
            results[name] = {"error": f"{type(error).__name__}: {error}"[:300]}
    out.write_text(json.dumps(results))  # the peers print banners on stdout


if __name__ == "__main__":
    main()
