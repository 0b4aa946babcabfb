#!/usr/bin/env python3
"""Generate the small, deterministic test fixtures under Fixtures/.

Stdlib only. Run from anywhere: `Scripts/make-fixtures.py`.
Re-running produces byte-identical output.
"""
import json
import random
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "Fixtures"
SEED = 42

# Tiny iris MLP: 4 -> 16 -> 3.
SHAPES = {
    "fc1.weight": [16, 4],
    "fc1.bias": [16],
    "fc2.weight": [3, 16],
    "fc2.bias": [3],
}


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def random_tensor(rng, shape, scale=0.1):
    return [rng.gauss(0.0, 1.0) * scale for _ in range(numel(shape))]


def pack_f32(values):
    return struct.pack(f"<{len(values)}f", *values)


def write_safetensors(path, tensors):
    """tensors: dict name -> (shape, list of floats); written in sorted-name order."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        blob = pack_f32(values)
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs))


def validate_safetensors(path):
    """Re-parse a safetensors file and check it is well-formed. Returns {name: bytes}."""
    raw = path.read_bytes()
    assert len(raw) >= 8, "file too short"
    (n,) = struct.unpack_from("<Q", raw, 0)
    assert n % 8 == 0 and 8 + n <= len(raw), f"bad header length {n}"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    assert header.pop("__metadata__") == {"format": "pt"}
    data = raw[8 + n:]
    entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    cursor = 0
    out = {}
    for name, info in entries:
        assert info["dtype"] == "F32", name
        begin, end = info["data_offsets"]
        assert begin == cursor, f"{name}: gap/overlap at {begin} (expected {cursor})"
        assert end - begin == 4 * numel(info["shape"]), f"{name}: size mismatch"
        out[name] = data[begin:end]
        cursor = end
    assert cursor == len(data), f"data has {len(data) - cursor} trailing bytes"
    return header, out


def make_models():
    rng = random.Random(SEED)
    base = {name: (shape, random_tensor(rng, shape)) for name, shape in SHAPES.items()}
    v1 = ROOT / "model" / "model.safetensors"
    write_safetensors(v1, base)

    # "Fine-tuned": only the output layer changes.
    ft_rng = random.Random(SEED + 1)
    tuned = dict(base)
    for name in ("fc2.weight", "fc2.bias"):
        tuned[name] = (SHAPES[name], random_tensor(ft_rng, SHAPES[name]))
    v2 = ROOT / "model" / "model-v2.safetensors"
    write_safetensors(v2, tuned)

    h1, t1 = validate_safetensors(v1)
    h2, t2 = validate_safetensors(v2)
    assert h1 == h2, "v1/v2 headers differ"
    for name in SHAPES:
        same = t1[name] == t2[name]
        assert same == name.startswith("fc1."), f"{name}: unexpected (in)equality"


# Real iris per-species means / standard deviations (Fisher 1936).
SPECIES = [
    ("setosa", (5.006, 3.428, 1.462, 0.246), (0.352, 0.379, 0.174, 0.105)),
    ("versicolor", (5.936, 2.770, 4.260, 1.326), (0.516, 0.314, 0.470, 0.198)),
    ("virginica", (6.588, 2.974, 5.552, 2.026), (0.636, 0.322, 0.552, 0.275)),
]


def make_dataset():
    rng = random.Random(SEED)
    lines = ["sepal_length,sepal_width,petal_length,petal_width,species"]
    for species, means, sds in SPECIES:
        for _ in range(50):
            vals = [max(0.1, rng.gauss(m, s)) for m, s in zip(means, sds)]
            lines.append(",".join(f"{v:.1f}" for v in vals) + "," + species)
    d = ROOT / "data"
    d.mkdir(parents=True, exist_ok=True)
    (d / "iris.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (d / "README.md").write_text(
        "Synthetic iris-like dataset: 150 rows (50 per species), sampled around the real per-species means.\n"
        "Generated deterministically (seed 42) by Scripts/make-fixtures.py; not the original Fisher data.\n",
        encoding="utf-8")


TRAIN_YAML = """\
experiment: iris-mlp
seed: 42

data:
  path: data/iris.csv
  target: species
  features: [sepal_length, sepal_width, petal_length, petal_width]
  split:
    train: 0.7
    val: 0.15
    test: 0.15

model:
  arch: mlp
  input: 4
  hidden: 16
  output: 3
  activation: relu

training:
  optimizer: adam
  lr: 0.01
  weight_decay: 0.0001
  epochs: 50
  batch_size: 16
"""


def make_config():
    d = ROOT / "config"
    d.mkdir(parents=True, exist_ok=True)
    (d / "train.yaml").write_text(TRAIN_YAML, encoding="utf-8")


def main():
    make_models()
    make_dataset()
    make_config()
    for p in sorted(ROOT.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:6d}  {p.relative_to(ROOT.parent)}")


if __name__ == "__main__":
    main()
