#!/usr/bin/env bash
# The scale check of issue 5: an embed job over 1,000,000 records streams in bounded
# memory at the throughput of a 20,000-record job. Builds a 1M-line JSONL.gz from
# debdesc.jsonl (its 63,666 texts repeated, each record with a unique id), runs both
# jobs with `quern run --once` under /usr/bin/time, and prints peak RSS and texts/s.
# Usage: scripts/bench/embed-1m.sh [PRECISION] [THREADS] [RECORDS]   (release build first)
set -euo pipefail
cd "$(dirname "$0")/../.."
PRECISION=${1:-int8}; THREADS=${2:-2}; RECORDS=${3:-1000000}
Q=$PWD/.build/release/quern
MODEL=$PWD/models/all-MiniLM-L6-v2
CORPUS=$(realpath ../shared/corpora/debdesc.jsonl)
WORK=$(mktemp -d /tmp/quern-1m.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
python3 - "$CORPUS" "$WORK" "$RECORDS" <<'PY'
import gzip, json, sys
texts = [json.loads(l)["text"] for l in open(sys.argv[1])]
n = int(sys.argv[3])
with gzip.open(f"{sys.argv[2]}/big.jsonl.gz", "wt", compresslevel=1) as f:
    for i in range(n):
        f.write(json.dumps({"id": f"r{i}", "text": texts[i % len(texts)]}) + "\n")
with open(f"{sys.argv[2]}/small.jsonl", "w") as f:
    for i in range(20000):
        f.write(json.dumps({"id": f"r{i}", "text": texts[i % len(texts)]}) + "\n")
PY
for set in small.jsonl big.jsonl.gz; do
  spool=$WORK/spool-$set
  mkdir -p "$spool"
  cat > "$WORK/$set.json" <<JSON
{"version": 1, "id": "scale", "task": "embed", "precision": "$PRECISION", "model": "$MODEL",
 "input": {"path": "$WORK/$set", "id_field": "id"}, "output": {"format": "npy"}}
JSON
  "$Q" submit "$WORK/$set.json" "$spool" --root / > /dev/null
  QUERN_THREADS=$THREADS /usr/bin/time -f "%M" -o "$WORK/rss" "$Q" run --once "$spool" --root / 2> /dev/null
  python3 - "$spool/done/scale/report.json" "$WORK/rss" "$set" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rss = int(open(sys.argv[2]).read().split()[-1]) / 1024
print(f"{sys.argv[3]:14s} records {r['records']['succeeded']:>8,}  {r['throughput']['records_per_second']:7.1f} texts/s  "
      f"wall {r['timings']['wall_seconds']:7.1f} s  peak RSS {rss:6.1f} MB")
PY
done
