#!/usr/bin/env python3
"""Requantises the shipped SmolLM2-135M GGUF into every block format Quern reads.

Usage: make-gguf-variants.py [MODELS_DIR] [FTYPE ...]
  MODELS_DIR  where /work/shared/bench/setup-llm-anchors.sh put
              smollm2-135m-instruct.Q4_1.gguf (default /tmp/quern-llm-anchors/models)
  FTYPE       llama.cpp file types to make (default: all below); NAME-pure quantises every
              tensor it can to NAME's type instead of llama.cpp's mix (Q2_K's mix holds no Q2_K)

Run with the anchors venv's Python: it needs llama-cpp-py-sync, whose libllama exposes
llama.cpp's own quantiser (llama_model_quantize), the same way generate_anchors.py makes the
Q8_0 file. Each output is smollm2-135m-instruct.FTYPE.gguf; an existing one is kept.

SmolLM2-135M has hidden size 576, not a multiple of the K-quants' 256-weight super-block:
llama.cpp then falls back to a 32-weight format for those tensors, so in the K-quant files
only the feed-forward down projections (rows of 1536) are K-quants. scripts/check-gguf.py
prints which types each file ends up holding.
"""
import os, sys

from llama_cpp_py_sync._cffi_bindings import get_ffi, get_lib

FTYPES = ["Q4_0", "Q5_0", "Q5_1", "Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_M", "Q6_K", "F16", "BF16",
          "Q2_K-pure"]

models = sys.argv[1] if len(sys.argv) > 1 else "/tmp/quern-llm-anchors/models"
wanted = sys.argv[2:] or FTYPES
src = os.path.join(models, "smollm2-135m-instruct.Q4_1.gguf")
if not os.path.exists(src):
    sys.exit(f"{src} missing: run /work/shared/bench/setup-llm-anchors.sh")

lib, ffi = get_lib(), get_ffi()


@ffi.callback("void(enum ggml_log_level, const char *, void *)")
def log(level, text, _):
    if level >= 4 and level != 5:  # errors only; 5 is a continuation line
        sys.stderr.write(ffi.string(text).decode(errors="replace"))


lib.llama_log_set(log, ffi.NULL)
for name in wanted:
    out = os.path.join(models, f"smollm2-135m-instruct.{name}.gguf")
    if os.path.exists(out):
        print(f"{name}: have {out}")
        continue
    qp = ffi.new("llama_model_quantize_params *", lib.llama_model_quantize_default_params())
    qp.ftype = getattr(lib, f"LLAMA_FTYPE_MOSTLY_{name.removesuffix('-pure')}")
    qp.pure = name.endswith("-pure")
    qp.allow_requantize = True  # the source is Q4_1: dequantised to fp32, then quantised again
    qp.nthread = os.cpu_count() or 1
    part = out + ".part"
    rc = lib.llama_model_quantize(src.encode(), part.encode(), qp)
    if rc != 0:
        sys.exit(f"{name}: llama_model_quantize returned {rc}")
    os.rename(part, out)
    print(f"{name}: made {out} ({os.path.getsize(out) >> 20} MiB)")
