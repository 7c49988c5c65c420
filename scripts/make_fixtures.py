"""Generate Quern's committed test fixtures: a tiny MLP and its data.

Why: Quern's Swift tests need a real, small model (safetensors + config.json)
and real input data in every format Quern reads (CSV, JSONL, NPY, tar.gz of
JSONL shards), plus reference outputs from an independent forward pass, so
that the Swift inference path can be checked against known-good numbers
without any network access or large downloads.

Everything comes from scikit-learn's bundled `load_digits` data set (shipped
inside the package; nothing is downloaded). All seeds are fixed, so reruns
with the pinned versions reproduce the same files.

How to run (from the repo root):

    python3 -m venv /tmp/fixvenv
    /tmp/fixvenv/bin/pip install -r scripts/requirements-fixtures.txt
    /tmp/fixvenv/bin/python scripts/make_fixtures.py

Outputs go to fixtures/models/digits-mlp/ and fixtures/data/.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import struct
import sys
import tarfile
import zlib
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "fixtures" / "models" / "digits-mlp"
DATA_DIR = ROOT / "fixtures" / "data"

N_FEATURES = 64
N_LABELS = 10
FEATURE_NAMES = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
MAX_FIXTURE_BYTES = 1_000_000


# --------------------------------------------------------------------------
# safetensors writer / independent reader
# --------------------------------------------------------------------------

def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> str:
    """Write F32 tensors per the safetensors spec. Returns the header JSON."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    buffers = []
    offset = 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = arr.tobytes(order="C")
        header[name] = {
            "dtype": "F32",
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        buffers.append(raw)
        offset += len(raw)
    header_json = json.dumps(header, separators=(",", ":"), ensure_ascii=True)
    header_bytes = header_json.encode("utf-8")
    pad = (-(8 + len(header_bytes))) % 8
    header_bytes += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for raw in buffers:
            f.write(raw)
    return header_json


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Minimal independent parser (F32 only) used to verify the written file."""
    blob = path.read_bytes()
    assert len(blob) >= 8, "file too short"
    (n,) = struct.unpack("<Q", blob[:8])
    assert (8 + n) % 8 == 0, "header not padded to 8-byte alignment"
    assert 8 + n <= len(blob), "header length past end of file"
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    data = blob[8 + n :]
    assert header.pop("__metadata__") == {"format": "pt"}
    out: dict[str, np.ndarray] = {}
    spans = []
    for name, info in header.items():
        assert info["dtype"] == "F32", name
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        assert end - begin == 4 * int(np.prod(shape, dtype=np.int64)), name
        spans.append((begin, end, name))
        out[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(shape)
    # Buffer must be covered contiguously, in sorted-name order, with no gaps.
    spans.sort()
    assert [s[2] for s in spans] == sorted(out), "tensors not in sorted-name order"
    pos = 0
    for begin, end, _ in spans:
        assert begin == pos, "gap or overlap in data buffer"
        pos = end
    assert pos == len(data), "trailing bytes after last tensor"
    return out


# --------------------------------------------------------------------------
# reference forward pass (plain numpy, fp32)
# --------------------------------------------------------------------------

def forward_fp32(t: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    f32 = np.float32
    h = (x.astype(f32) - t["normalizer.mean"]) / t["normalizer.scale"]
    h = h @ t["layers.0.weight"].T + t["layers.0.bias"]
    h = np.maximum(h, f32(0))
    logits = h @ t["layers.1.weight"].T + t["layers.1.bias"]
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    probs = e / e.sum(axis=1, keepdims=True)
    assert probs.dtype == np.float32
    return probs


# --------------------------------------------------------------------------
# data writers
# --------------------------------------------------------------------------

def row_ids(n: int) -> list[str]:
    return [f"digit-{i:04d}" for i in range(n)]


def jsonl_line(row_id: str, features: np.ndarray, label: int) -> str:
    obj = {"id": row_id, "features": [int(v) for v in features], "label": int(label)}
    return json.dumps(obj, separators=(",", ":")) + "\n"


def write_csv(path: Path, ids, X, y) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", *FEATURE_NAMES, "label"])
        for rid, feats, label in zip(ids, X, y):
            w.writerow([rid, *(int(v) for v in feats), int(label)])


def write_jsonl(path: Path, ids, X, y) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        for rid, feats, label in zip(ids, X, y):
            f.write(jsonl_line(rid, feats, label))


def write_npy(path: Path, X) -> None:
    arr = np.ascontiguousarray(X, dtype=np.float32)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=(1, 0), allow_pickle=False)
    head = path.read_bytes()[:8]
    assert head == b"\x93NUMPY\x01\x00", head


def write_tar_gz(path: Path, members: dict[str, bytes]) -> None:
    """Reproducible tar.gz: fixed mtimes/owners, sorted members, gzip mtime 0."""
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for name in sorted(members):
                    payload = members[name]
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    info.mtime = 0
                    info.mode = 0o644
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.type = tarfile.REGTYPE
                    tar.addfile(info, io.BytesIO(payload))


def write_expected(path: Path, ids, probs: np.ndarray, id2label: dict[str, str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        for rid, p in zip(ids, probs):
            idx = int(np.argmax(p))
            # 9 significant digits round-trips float32 exactly.
            plist = [float(format(float(v), ".9g")) for v in p]
            obj = {
                "id": rid,
                "label": id2label[str(idx)],
                "label_index": idx,
                "probabilities": plist,
            }
            f.write(json.dumps(obj, separators=(",", ":")) + "\n")


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def main() -> int:
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    DATA_DIR.mkdir(parents=True, exist_ok=True)

    digits = load_digits()
    X, y = digits.data, digits.target
    assert X.shape == (1797, N_FEATURES) and set(np.unique(y)) == set(range(N_LABELS))
    assert list(digits.feature_names) == FEATURE_NAMES
    assert np.all(X == np.round(X)) and X.min() >= 0 and X.max() <= 16

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    assert X_test.shape == (450, N_FEATURES)

    scaler = StandardScaler().fit(X_train)
    Xs_train = scaler.transform(X_train)
    Xs_test = scaler.transform(X_test)
    # sklearn already maps std==0 to scale 1.0; check that holds.
    assert np.all(scaler.scale_ > 0)

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        mlp = MLPClassifier(
            hidden_layer_sizes=(64,), activation="relu", max_iter=500, random_state=0
        ).fit(Xs_train, y_train)
    assert list(mlp.classes_) == list(range(N_LABELS))
    assert mlp.out_activation_ == "softmax"
    mlp_acc = float(mlp.score(Xs_test, y_test))

    logreg = LogisticRegression(max_iter=5000).fit(Xs_train, y_train)
    logreg_acc = float(logreg.score(Xs_test, y_test))

    # ---- model: config.json + model.safetensors
    id2label = {str(i): str(i) for i in range(N_LABELS)}
    config = {
        "model_type": "mlp",
        "architectures": ["QuernMLP"],
        "input_size": N_FEATURES,
        "num_labels": N_LABELS,
        "layers": [
            {"out_features": 64, "activation": "relu"},
            {"out_features": N_LABELS, "activation": "none"},
        ],
        "problem_type": "single_label_classification",
        "id2label": id2label,
        "feature_names": FEATURE_NAMES,
        "torch_dtype": "float32",
    }
    with open(MODEL_DIR / "config.json", "w", newline="", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")

    tensors = {
        "normalizer.mean": scaler.mean_.astype(np.float32),
        "normalizer.scale": scaler.scale_.astype(np.float32),
        "layers.0.weight": mlp.coefs_[0].T.astype(np.float32),
        "layers.0.bias": mlp.intercepts_[0].astype(np.float32),
        "layers.1.weight": mlp.coefs_[1].T.astype(np.float32),
        "layers.1.bias": mlp.intercepts_[1].astype(np.float32),
    }
    expected_shapes = {
        "normalizer.mean": (64,),
        "normalizer.scale": (64,),
        "layers.0.weight": (64, 64),
        "layers.0.bias": (64,),
        "layers.1.weight": (10, 64),
        "layers.1.bias": (10,),
    }
    st_path = MODEL_DIR / "model.safetensors"
    header_json = write_safetensors(st_path, tensors)

    loaded = read_safetensors(st_path)
    assert set(loaded) == set(tensors)
    for name, arr in tensors.items():
        assert loaded[name].shape == expected_shapes[name], name
        assert loaded[name].dtype == np.dtype("<f4"), name
        assert np.array_equal(loaded[name], arr), name

    # ---- data (test split)
    ids = row_ids(len(X_test))
    write_csv(DATA_DIR / "digits-test.csv", ids, X_test, y_test)
    write_jsonl(DATA_DIR / "digits-test.jsonl", ids, X_test, y_test)
    write_npy(DATA_DIR / "digits-test.npy", X_test)
    half = len(X_test) // 2  # 225
    shards = {
        "digits/part-0.jsonl": "".join(
            jsonl_line(i, f, l) for i, f, l in zip(ids[:half], X_test[:half], y_test[:half])
        ).encode("utf-8"),
        "digits/part-1.jsonl": "".join(
            jsonl_line(i, f, l) for i, f, l in zip(ids[half:], X_test[half:], y_test[half:])
        ).encode("utf-8"),
    }
    write_tar_gz(DATA_DIR / "digits.tar.gz", shards)

    # ---- training data for finetune jobs: the train split as CSV in a tar.gz, and both
    # splits as IDX (MNIST's format: big-endian header, then u8 pixels / labels).
    train_ids = [f"train-{i:04d}" for i in range(len(X_train))]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", *FEATURE_NAMES, "label"])
    for rid, feats, label in zip(train_ids, X_train, y_train):
        w.writerow([rid, *(int(v) for v in feats), int(label)])
    write_tar_gz(DATA_DIR / "digits-train.tar.gz", {"digits/train.csv": buf.getvalue().encode("utf-8")})

    def idx_images(X) -> bytes:
        n = len(X)
        return struct.pack(">IIII", 0x0803, n, 8, 8) + X.astype(np.uint8).tobytes()

    def idx_labels(y) -> bytes:
        return struct.pack(">II", 0x0801, len(y)) + np.asarray(y, dtype=np.uint8).tobytes()

    write_tar_gz(DATA_DIR / "digits-idx.tar.gz", {
        "train-images-idx3-ubyte": idx_images(X_train), "train-labels-idx1-ubyte": idx_labels(y_train),
        "test-images-idx3-ubyte": idx_images(X_test), "test-labels-idx1-ubyte": idx_labels(y_test),
    })

    # ---- the test split as PNG images in label directories (ImageFolder layout), 8-bit
    # grayscale, pixels x16 (0..16 -> 0..255); scanline filters cycle through all five
    # types so a reader's unfiltering is fully exercised.
    def png(pixels: np.ndarray) -> bytes:
        h, w = pixels.shape
        rows = pixels.astype(np.int32)
        raw = bytearray()
        for y in range(h):
            f = y % 5
            raw.append(f)
            for x in range(w):
                a = rows[y, x - 1] if x > 0 else 0
                b = rows[y - 1, x] if y > 0 else 0
                c = rows[y - 1, x - 1] if x > 0 and y > 0 else 0
                if f == 0: pred = 0
                elif f == 1: pred = a
                elif f == 2: pred = b
                elif f == 3: pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                raw.append((int(rows[y, x]) - pred) & 0xFF)
        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")

    images = np.minimum(X_test.reshape(-1, 8, 8) * 16, 255).astype(np.uint8)
    write_tar_gz(DATA_DIR / "digits-png.tar.gz",
                 {f"test/{int(label)}/{rid}.png": png(img) for rid, img, label in zip(ids, images, y_test)})

    # ---- architectures to train from scratch (config.json only, no weights)
    arch = {
        "digits-mlp-arch": {
            "model_type": "mlp", "input_size": N_FEATURES,
            "layers": [{"out_features": 64, "activation": "relu"}, {"out_features": N_LABELS}],
        },
        # Wide enough that pruning pays: its 512x512 layer runs on the sparse kernel
        # once pruned (the loader keeps layers under 64k weights dense).
        "digits-mlp-wide-arch": {
            "model_type": "mlp", "input_size": N_FEATURES,
            "layers": [{"out_features": 512, "activation": "relu"}, {"out_features": 512, "activation": "relu"},
                       {"out_features": N_LABELS}],
        },
        "digits-cnn-arch": {
            "model_type": "cnn", "input_shape": [1, 8, 8],
            "layers": [
                {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1, "activation": "relu"},
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1, "activation": "relu"},
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "flatten"},
                {"type": "dropout", "p": 0.3},
                {"type": "linear", "out_features": 64, "activation": "relu"},
                {"type": "dropout", "p": 0.3},
                {"type": "linear", "out_features": N_LABELS},
            ],
        },
    }
    for name, cfg in arch.items():
        d = ROOT / "fixtures" / "models" / name
        d.mkdir(parents=True, exist_ok=True)
        cfg = {**cfg, "id2label": id2label, "problem_type": "single_label_classification"}
        with open(d / "config.json", "w", newline="", encoding="utf-8") as f:
            f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

    # ---- reference outputs from the safetensors file, independent of sklearn
    probs = forward_fp32(loaded, X_test.astype(np.float32))
    pred_ref = probs.argmax(axis=1)
    pred_sk = mlp.predict(Xs_test)
    mismatches = np.flatnonzero(pred_ref != pred_sk)
    assert mismatches.size == 0, f"fp32 argmax disagrees with sklearn on rows {mismatches}"
    assert np.allclose(probs, mlp.predict_proba(Xs_test), atol=1e-4)
    write_expected(DATA_DIR / "digits-test.expected.jsonl", ids, probs, id2label)

    # ---- self-checks on written data
    back = np.load(DATA_DIR / "digits-test.npy")
    assert back.dtype == np.float32 and back.shape == (450, 64)
    assert np.array_equal(back, X_test.astype(np.float32))
    with tarfile.open(DATA_DIR / "digits.tar.gz", "r:gz") as tar:
        names = tar.getnames()
        assert names == sorted(shards), names
        for m in tar.getmembers():
            assert tar.extractfile(m).read() == shards[m.name]
    assert (
        shards["digits/part-0.jsonl"] + shards["digits/part-1.jsonl"]
        == (DATA_DIR / "digits-test.jsonl").read_bytes()
    )

    # ---- TRAINING.md
    training_md = f"""# digits-mlp

Small test fixture model for Quern, generated by `scripts/make_fixtures.py`.

- Data set: scikit-learn `load_digits` (1797 samples, 64 features = 8x8 pixels
  with values 0..16, 10 classes), bundled with scikit-learn; nothing downloaded.
- Split: `train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)`
  -> {len(X_train)} train / {len(X_test)} test rows. The test split is in
  `fixtures/data/` (ids `digit-0000`..`digit-0449` in test-split order).
- Preprocessing: `StandardScaler` fit on the train split, stored as
  `normalizer.mean` / `normalizer.scale`; input is `(x - mean) / scale`.
- Model: `MLPClassifier(hidden_layer_sizes=(64,), activation="relu",
  max_iter=500, random_state=0)`; stored weights are `[out_features, in_features]`.
- Versions: Python {sys.version.split()[0]}, scikit-learn {sklearn.__version__}, numpy {np.__version__}.
- Test accuracy (sklearn, standardized features):
  - MLP: {mlp_acc:.4f}
  - `LogisticRegression(max_iter=5000)` baseline: {logreg_acc:.4f}
- Reference outputs: `fixtures/data/digits-test.expected.jsonl`, from an
  independent plain-numpy fp32 forward pass over `model.safetensors`.

Regenerate (from the repo root):

    python3 -m venv /tmp/fixvenv
    /tmp/fixvenv/bin/pip install -r scripts/requirements-fixtures.txt
    /tmp/fixvenv/bin/python scripts/make_fixtures.py
"""
    with open(MODEL_DIR / "TRAINING.md", "w", newline="", encoding="utf-8") as f:
        f.write(training_md)

    # ---- size guard + report
    outputs = sorted(p for d in (MODEL_DIR, DATA_DIR) for p in d.iterdir() if p.is_file())
    for p in outputs:
        size = p.stat().st_size
        assert size < MAX_FIXTURE_BYTES, f"{p} is {size} bytes"
        print(f"{size:>9}  {p.relative_to(ROOT)}")
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}")
    print(f"MLP test accuracy:                {mlp_acc:.4f}")
    print(f"LogisticRegression test accuracy: {logreg_acc:.4f}")
    print(f"MLP converged in {mlp.n_iter_} iterations")
    print(f"safetensors header: {header_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
