#!/usr/bin/env python3
"""Checks that two Quern binaries produce the same job outputs: for refactors, which
must not change a byte of what jobs publish.

    scripts/compare-runs.py OLD_QUERN NEW_QUERN      run the example jobs with each, compare
    scripts/compare-runs.py --trees OLD_DIR NEW_DIR  compare two directory trees of spools
                                                     (e.g. end-to-end scratch directories
                                                     kept with QUERN_E2E_KEEP=1)

Compared, per job directory (done/ and failed/): every *.gz decompressed, every other
file byte for byte, except report.json and error.json, which are compared as JSON
without what differs by nature between runs: timings, measured speeds, the host and
the failure time. Run from the repository root. Exit 0 when everything is equal.
"""
import gzip
import json
import os
import shutil
import subprocess
import sys

EXAMPLE_JOBS = [
    "predict-digits", "evaluate-digits", "predict-digits-csv", "predict-digits-npy", "predict-digits-int8",
    "evaluate-digits-png", "finetune-digits-mlp", "finetune-digits-cnn", "finetune-digits-cnn-idx",
    "finetune-digits-mlp-wide", "quantize-digits-mlp", "prune-digits-mlp", "embed-texts", "score-queries",
    "score-pairs", "predict-texts", "finetune-text-head",
]
# Report keys whose values are measurements of this run, not results.
VOLATILE = {"timings", "throughput", "host", "seconds", "failed_at", "records_per_second", "speedup",
            "fp32_records_per_second", "int8_records_per_second", "dense_records_per_second",
            "pruned_records_per_second", "seconds_per_epoch", "train_seconds_this_run"}


def scrub(value):
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def content(path):
    name = os.path.basename(path)
    with open(path, "rb") as f:
        data = f.read()
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name in ("report.json", "error.json"):
        return json.dumps(scrub(json.loads(data)), sort_keys=True, indent=1).encode()
    return data


def files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            parts = rel.split(os.sep)
            # Only what jobs publish: done/ and failed/ of any spool in the tree.
            if not any(s in ("done", "failed") for s in parts[:-1]) or n in ("job.log", "manifest.json"):
                continue
            out[rel] = p
    return out


def compare_trees(old, new):
    a, b = files(old), files(new)
    problems = []
    for rel in sorted(set(a) | set(b)):
        if rel not in a or rel not in b:
            problems.append(f"only in {'new' if rel in b else 'old'}: {rel}")
            continue
        x, y = content(a[rel]), content(b[rel])
        if x != y:
            detail = ""
            if rel.endswith(".json"):
                detail = "\n    old: " + x.decode()[:400].replace("\n", " ") + "\n    new: " + y.decode()[:400].replace("\n", " ")
            problems.append(f"differs: {rel}{detail}")
    print(f"compared {len(set(a) & set(b))} files")
    return problems


def run_examples(quern, spool):
    shutil.rmtree(spool, ignore_errors=True)
    env = dict(os.environ)
    for job in EXAMPLE_JOBS:
        subprocess.run([quern, "submit", f"jobs/{job}.json", spool, "--root", "."], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    subprocess.run([quern, "run", "--once", spool, "--root", "."], env=env, stderr=subprocess.DEVNULL)
    with open("jobs/prune-digits-mlp-wide.json") as f:
        wide = f.read().replace('"done/', f'"{spool}/done/')
    path = os.path.join("/tmp", "quern-compare-wide.json")
    with open(path, "w") as f:
        f.write(wide)
    subprocess.run([quern, "submit", path, spool, "--root", "."], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([quern, "run", "--once", spool, "--root", "."], env=env, stderr=subprocess.DEVNULL)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--trees":
        problems = compare_trees(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3:
        # One spool path for both, so paths recorded in reports are the same.
        spool, keep = "/tmp/quern-compare-spool", "/tmp/quern-compare"
        shutil.rmtree(keep, ignore_errors=True)
        os.makedirs(keep)
        for label, quern in (("old", sys.argv[1]), ("new", sys.argv[2])):
            run_examples(os.path.abspath(quern), spool)
            shutil.move(spool, os.path.join(keep, label))
        problems = compare_trees(os.path.join(keep, "old"), os.path.join(keep, "new"))
    else:
        print(__doc__)
        return 2
    for p in problems:
        print(p)
    print("equal" if not problems else f"{len(problems)} differences")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
