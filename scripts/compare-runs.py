#!/usr/bin/env python3
"""Checks that two Quern binaries produce the same job outputs: for refactors, which
must not change a byte of what jobs publish.

    scripts/compare-runs.py OLD_QUERN NEW_QUERN      run the example jobs with each, compare
    scripts/compare-runs.py --trees OLD_DIR NEW_DIR  compare two directory trees of spools
    scripts/compare-runs.py --e2e OLD_DIR NEW_DIR    compare the end-to-end tests' scratch
                                                     directories of two runs, kept with
                                                     QUERN_E2E_KEEP=1 and moved out of /tmp
                                                     (paired by test label)

Compared, per job directory (done/ and failed/): every *.gz decompressed, every other
file byte for byte, except report.json and error.json, which are compared as JSON
without what differs by nature between runs: timings, measured speeds, the host and
the failure time. Run from the repository root. Exit 0 when everything is equal.
"""
import gzip
import json
import os
import re
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


def content(path, root=None):
    name = os.path.basename(path)
    with open(path, "rb") as f:
        data = f.read()
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    elif name in ("report.json", "error.json"):
        data = json.dumps(scrub(json.loads(data)), sort_keys=True, indent=1).encode()
    if not root:
        return data
    # Scratch directories have random names and the checkouts run from their own places:
    # what a job records of either is the same path.
    data = data.replace(("/tmp/" + os.path.basename(root)).encode(), b"SCRATCH")
    return re.sub(rb'/[^" ]*?/fixtures/', b"REPO/fixtures/", data)


def files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            parts = rel.split(os.sep)
            # Only what jobs publish: done/ and failed/ of any spool in the tree (not logs).
            if not any(s in ("done", "failed") for s in parts[:-1]) or n in ("job.log", "manifest.json") or "slurm" in parts:
                continue
            out[rel] = p
    return out


def json_diff(a, b, at=""):
    """The paths where two JSON values differ: changed, only old (-), only new (+)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            p = f"{at}.{k}" if at else k
            if k not in b:
                out.append(f"- {p}")
            elif k not in a:
                out.append(f"+ {p} = {json.dumps(b[k])[:80]}")
            else:
                out += json_diff(a[k], b[k], p)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in json_diff(x, y, f"{at}[{i}]")]
    return [] if a == b else [f"~ {at}: {json.dumps(a)[:60]} -> {json.dumps(b)[:60]}"]


def compare_trees(old, new, relocate=False):
    a, b = files(old), files(new)
    problems = []
    for rel in sorted(set(a) | set(b)):
        if rel not in a or rel not in b:
            problems.append(f"only in {'new' if rel in b else 'old'}: {rel}")
            continue
        x, y = content(a[rel], old if relocate else None), content(b[rel], new if relocate else None)
        if x != y:
            detail = ""
            if rel.endswith(".json"):
                detail = "".join(f"\n    {line}" for line in json_diff(json.loads(x), json.loads(y)))
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
    elif len(sys.argv) == 4 and sys.argv[1] == "--e2e":
        def labels(d):
            return {n.rsplit("-", 1)[0]: os.path.join(d, n) for n in os.listdir(d)}
        old, new = labels(sys.argv[2]), labels(sys.argv[3])
        problems = [f"only in {'old' if k in old else 'new'}: {k}" for k in sorted(set(old) ^ set(new))]
        for k in sorted(set(old) & set(new)):
            problems += [f"{k}: {p}" for p in compare_trees(old[k], new[k], relocate=True)]
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
