#!/usr/bin/env bash
# Creates a venv with a CPU PyTorch and numpy for scripts/bench/train_anchor.py (the
# PyTorch reference for Quern's training benchmark). Safe to run again: it does nothing
# when the venv already imports torch. Venv: $QUERN_TORCH_VENV, default /tmp/quern-torch.
#
# Where torch comes from, first that works:
#  1. download.pytorch.org's CPU index, if reachable (small CPU-only wheel);
#  2. a "+cpu" torch wheel in pip's configured --find-links folder (offline: --no-index);
#  3. PyPI. Its Linux x86-64 wheel is a CUDA build: libtorch.so links the CUDA libraries
#     at load time, so `import torch` fails without the nvidia-* packages even on a CPU
#     (tried: "libcublasLt.so.*[0-9] not found"). We install torch --no-deps, then every
#     requirement it declares except triton (~1 GB, only used by torch.compile's GPU
#     backend): ~4.4 GB instead of ~5.4 GB. pip then prints an "ERROR: ... dependency
#     conflicts ... triton" notice: expected, not a failure.
# QUERN_TORCH_SOURCE=pytorch|local|pypi forces one of them.
set -euo pipefail
VENV=${QUERN_TORCH_VENV:-/tmp/quern-torch}
SOURCE=${QUERN_TORCH_SOURCE:-}
CPU_INDEX=https://download.pytorch.org/whl/cpu

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  echo "torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') already in $VENV"
  exit 0
fi
python3 -m venv "$VENV"
PY="$VENV/bin/python"
pip() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

# Version of the torch wheel pip would take from --find-links alone ("" if none).
local_torch() {
  "$PY" -m pip install -q --no-index --no-deps --dry-run --report - torch 2>/dev/null |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["install"][0]["metadata"]["version"])' 2>/dev/null || true
}

if [ -z "$SOURCE" ]; then
  if curl -fsS -m 5 -o /dev/null "$CPU_INDEX/torch/" 2>/dev/null; then SOURCE=pytorch
  elif [[ "$(local_torch)" == *+cpu ]]; then SOURCE=local
  else SOURCE=pypi; fi
fi
echo "installing torch into $VENV from: $SOURCE"
case "$SOURCE" in
  pytorch) pip --index-url "$CPU_INDEX" torch; pip numpy ;;
  local)   pip "torch==$(local_torch)" numpy ;;   # deps (sympy, ...) still come from PyPI
  pypi)
    pip --no-deps torch
    # torch's own Requires-Dist minus extras and triton; pip evaluates the markers.
    mapfile -t deps < <("$PY" -c '
import re
from importlib.metadata import requires
for r in requires("torch") or []:
    name = re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower()
    if "extra ==" not in r and name != "triton":
        print(r)')
    pip "${deps[@]}" numpy ;;
  *) echo "unknown QUERN_TORCH_SOURCE=$SOURCE" >&2; exit 2 ;;
esac

# Smoke test: matmul and a conv2d forward/backward on the CPU.
"$PY" - <<'PY'
import torch, torch.nn.functional as F
assert (torch.randn(2, 2) @ torch.randn(2, 2)).shape == (2, 2)
x = torch.randn(4, 1, 8, 8, requires_grad=True)
w = torch.randn(8, 1, 3, 3, requires_grad=True)
F.conv2d(x, w, padding=1).relu().sum().backward()
assert w.grad is not None and x.grad is not None
import numpy
print(f"torch {torch.__version__} (numpy {numpy.__version__}) OK in {__import__('sys').prefix}")
PY
