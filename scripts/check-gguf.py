#!/usr/bin/env python3
"""Compares Quern's GGUF dequantization with the `gguf` Python package's, bit for bit.

Usage: check-gguf.py QUERN [--random] GGUF...
  QUERN     the quern binary (its hidden `quern dequantize FILE` writes every tensor's fp32
            values, raw little-endian, in file order)
  GGUF      GGUF files; scripts/make-gguf-variants.py makes SmolLM2-135M in every block format
  --random  also check a GGUF of random bytes in every block format Quern reads (any bytes
            are valid blocks), a quarter of its blocks with NaN or infinite scales

For every tensor of every file, Quern's values are compared with
`gguf.quants.dequantize(tensor.data, tensor.tensor_type)` as 32-bit patterns (so -0 and
NaN payloads count). Prints per file and in total, per ggml type: tensors, values and
mismatching values; exits 1 on any mismatch. Needs a Python with `gguf` and numpy (the
anchors venv, /tmp/quern-llm-anchors/venv, has both).
"""
import collections, os, subprocess, sys, tempfile

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T, GGUFReader, GGUFWriter
from gguf.quants import dequantize

quern, files = sys.argv[1], [f for f in sys.argv[2:] if f != "--random"]
if "--random" in sys.argv[2:]:
    rng = np.random.default_rng(16)
    tmp = tempfile.TemporaryDirectory()  # removed at exit
    path = os.path.join(tmp.name, "random-blocks.gguf")
    w = GGUFWriter(path, "random")
    for qtype in (T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K,
                  T.Q6_K):
        weights, type_size = GGML_QUANT_SIZES[qtype]
        data = rng.integers(0, 256, (512, 256 // weights * type_size), dtype=np.uint8)
        # Every scale is a half float at an even offset: set its exponent bits in a quarter
        # of the rows, so both operands of d * q + m can be NaN.
        data.reshape(512, -1, type_size)[rng.random(512) < 0.25, :, 1::2] |= 0x7C
        w.add_tensor(qtype.name, data.view(np.float32) if qtype == T.F32 else data,
                     raw_dtype=None if qtype == T.F32 else qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    files.append(path)
if not files:
    sys.exit(__doc__)
np.seterr(all="ignore")  # NaN and infinite scales are part of the check

total = collections.defaultdict(lambda: [0, 0, 0])  # type: [tensors, values, mismatches]
for path in files:
    reader = GGUFReader(path)
    per = collections.defaultdict(lambda: [0, 0, 0])
    proc = subprocess.Popen([quern, "dequantize", path], stdout=subprocess.PIPE)
    for t in reader.tensors:
        want = np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32).view(np.uint32).ravel()
        n = int(t.n_elements)
        raw = proc.stdout.read(4 * n)
        if len(raw) != 4 * n:
            sys.exit(f"{path}: quern wrote {len(raw)} bytes for {t.name}, {4 * n} expected")
        got = np.frombuffer(raw, dtype="<u4")
        bad = int(np.count_nonzero(got != want)) if want.size == n else n
        if bad:
            i = int(np.argmax(got != want)) if want.size == n else 0
            print(f"  {t.name} ({t.tensor_type.name}, {n} values): {bad} differ; first at {i}: "
                  f"quern {got[i]:08x}, gguf {want[i] if want.size == n else 'size ' + str(want.size)}")
        for c in (per[t.tensor_type.name], total[t.tensor_type.name]):
            c[0] += 1
            c[1] += n
            c[2] += bad
    rest = proc.stdout.read()
    if proc.wait() != 0 or rest:
        sys.exit(f"{path}: quern exited {proc.returncode} with {len(rest)} bytes left over")
    print(path + ": " + ", ".join(f"{k} {v[0]} tensors/{v[2]} differ" for k, v in sorted(per.items())))

print(f"{'type':6} {'tensors':>8} {'values':>12} {'mismatching':>12}")
for k, (tensors, values, bad) in sorted(total.items()):
    print(f"{k:6} {tensors:8} {values:12} {bad:12}")
sys.exit(1 if any(v[2] for v in total.values()) else 0)
