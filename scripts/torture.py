#!/usr/bin/env python3
"""Torture run: many good jobs and hostile inputs on one spool while processes are
killed with SIGKILL, then an account of every job.

    scripts/torture.py [--quern PATH] [--jobs N] [--short] [--keep DIR] [--seed S]

Phase 1 (kill): N good jobs (copies of the example jobs, each with its own id) and every
hostile input below in one spool, one `quern watch` daemon; every 0.1-0.6 s either the
daemon (restarted at once) or one job's child process gets SIGKILL. A job's child is
killed at most limits.max_attempts - 1 times, so every crash the spool reports is one
Quern caused.
Phase 2 (race): N more good jobs dropped one by one into a spool served at once by two
`quern watch` daemons and a cron loop of `quern run --once`, children killed as above.

The account, printed as the last line:
  lost        a good job that is not in done/ at the end (or left anything in incoming/
              or active/), or a hostile input that is still in incoming/ or active/
  duplicated  a job that ended in more than one place, or result rows repeated
  different   a good job whose published files differ from an undisturbed run's
  unhandled   a hostile input that ended in internal_error or crashed, or a daemon
              that died without being killed
Exit 0 when all four are zero. `--short` (CI) runs 24 + 12 good jobs, all hostile inputs.
Run from the repository root; Python's standard library only.
"""
import argparse
import gzip
import importlib.util
import io
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
import zlib

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
spec = importlib.util.spec_from_file_location("compare_runs", os.path.join(REPO, "scripts", "compare-runs.py"))
compare_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_runs)

# Quick example jobs: every input format and the text models; the finetune checkpoints,
# so killing it tests resume.
KINDS = ["predict-digits", "predict-digits-csv", "predict-digits-npy", "predict-digits-int8", "evaluate-digits",
         "evaluate-digits-png", "embed-texts", "predict-texts", "score-pairs", "finetune-digits-mlp"]
MAX_ATTEMPTS = 3


def log(msg):
    print(f"torture: {msg}", flush=True)


def absolute_manifest(kind, job_id):
    with open(os.path.join(REPO, "jobs", f"{kind}.json")) as f:
        m = json.load(f)
    m["id"] = job_id

    def fix(v):
        return v if os.path.isabs(v) else os.path.join(REPO, v)
    m["input"]["path"] = fix(m["input"]["path"])
    if "model" in m:
        m["model"] = fix(m["model"])
    for block in m.values():
        if isinstance(block, dict):
            for key in ("queries", "documents"):
                if isinstance(block.get(key), str):
                    block[key] = fix(block[key])
    return m


def publish(spool, name, data):
    """Writes a manifest elsewhere in the spool, then renames it into incoming/."""
    stage = os.path.join(spool, "..", "staging")
    os.makedirs(stage, exist_ok=True)
    tmp = os.path.join(stage, name.hex() if isinstance(name, bytes) else name)
    with open(tmp, "wb") as f:
        f.write(data if isinstance(data, bytes) else json.dumps(data).encode())
    target = os.path.join(os.fsencode(spool), b"incoming", name if isinstance(name, bytes) else name.encode())
    os.rename(tmp, target)


# ---------------------------------------------------------------------------------------
# Hostile inputs: each writes what it needs under WORK and drops one thing in incoming/.

def hostile_inputs(work):
    data = os.path.join(work, "hostile")
    os.makedirs(data, exist_ok=True)
    items = []

    def manifest_bytes(name, raw):
        items.append((name, lambda spool: publish(spool, name + ".json", raw)))

    def job(name, **fields):
        m = {"version": 1, "id": name, "task": "predict",
             "model": os.path.join(REPO, "fixtures/models/digits-mlp"),
             "input": {"path": os.path.join(REPO, "fixtures/data/digits-test.jsonl"), "features_field": "features"}}
        for k, v in fields.items():
            if v is None:
                m.pop(k, None)
            else:
                m[k] = v
        manifest_bytes(name, json.dumps(m).encode())

    def file(rel, content):
        p = os.path.join(data, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(content)
        return p

    def model(name, config, weights=None, extra=None):
        d = os.path.join(data, "models", name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "wb") as f:
            f.write(config if isinstance(config, bytes) else json.dumps(config).encode())
        if weights is not None:
            with open(os.path.join(d, "model.safetensors"), "wb") as f:
                f.write(weights)
        for rel, content in (extra or {}).items():
            with open(os.path.join(d, rel), "wb") as f:
                f.write(content)
        return d

    def special(name, make):
        items.append((name, make))

    n = [0]

    def nid():
        n[0] += 1
        return f"h-{n[0]:02d}"

    # Manifests.
    for raw in [b"", b"{", b"[1, 2]", b'{"version": 2, "task": "predict"}', b'{"version": 1}',
                b'{"version": 1, "task": "explode", "input": {"path": "x"}}', b"\xff\xfe{}",
                b"\xef\xbb\xbf" + b'{"version": 1}', b'{"version": 1e309}', b"[" * 100000 + b"]" * 100000,
                b'{"version": 1, "version": 1}', b'{"version": 1, "task": "predict", "surprise": true}',
                b"\x00" * 1000, b'{"version": 1, "task": "predict", "input": {"path": "\\ud800"}}']:
        manifest_bytes(nid(), raw)
    manifest_bytes(nid(), b'{"version": 1, "task": "predict", "pad": "' + b"x" * (40 << 20) + b'"}')
    job(nid(), id="../../etc")
    job(nid(), id="a b")
    job(nid(), input={"path": "/etc/passwd", "format": "jsonl"})
    job(nid(), input={"path": "../../etc/passwd"})
    job(nid(), input={"path": os.path.join(data, "absent.jsonl")})
    job(nid(), model=os.path.join(data, "absent-model"))
    job(nid(), model=os.path.join(REPO, "fixtures/data/digits-test.csv"))
    job(nid(), model=None)
    job(nid(), limits={"max_attempts": -1})
    job(nid(), limits={"max_memory_mb": 1e18})
    job(nid(), batch_size=0)
    job(nid(), batch_size=1 << 62)
    job(nid(), output={"format": "parquet"})
    job(nid(), task="predict", input={"path": data, "format": "jsonl"})  # a directory as input

    # Things that are not manifests.
    def fifo(spool, name):
        os.mkfifo(os.path.join(spool, "incoming", name))

    def directory(spool, name):
        os.mkdir(os.path.join(spool, "incoming", name))

    def symlink(spool, name, target):
        os.symlink(target, os.path.join(spool, "incoming", name))

    def unix_socket(spool, name):
        s = socket.socket(socket.AF_UNIX)
        s.bind(os.path.join(spool, "incoming", name))
        s.close()

    outside = file("outside.json", json.dumps({"version": 1, "task": "predict"}).encode())
    for make in [lambda s, i: fifo(s, i + ".json"), lambda s, i: directory(s, i + ".json"),
                 lambda s, i: symlink(s, i + ".json", outside), lambda s, i: symlink(s, i + ".json", "/nonexistent"),
                 lambda s, i: unix_socket(s, i + ".json")]:
        i = nid()
        special(i, lambda spool, make=make, i=i: make(spool, i))
    i = nid()
    special(i, lambda spool, i=i: publish(spool, (i + "-\xff\xfe").encode("latin-1") + b".json", b"{}"))
    i = nid()
    special(i, lambda spool, i=i: publish(spool, i + "-" + "x" * 240 + ".json", b"{}"))

    # Models with absurd sizes or broken files.
    mlp = json.load(open(os.path.join(REPO, "fixtures/models/digits-mlp/config.json")))
    mlp_weights = open(os.path.join(REPO, "fixtures/models/digits-mlp/model.safetensors"), "rb").read()
    cnn = json.load(open(os.path.join(REPO, "fixtures/models/digits-cnn-arch/config.json")))
    bert_dir = os.path.join(REPO, "fixtures/models/tiny-bert")
    bert = json.load(open(os.path.join(bert_dir, "config.json")))
    bert_files = {n: open(os.path.join(bert_dir, n), "rb").read() for n in ("tokenizer.json", "vocab.txt")}
    bert_weights = open(os.path.join(bert_dir, "model.safetensors"), "rb").read()
    texts = os.path.join(REPO, "fixtures/text/debdesc-sample.jsonl")

    def with_layer(config, index, **changes):
        c = json.loads(json.dumps(config))
        c["layers"][index].update(changes)
        return c

    def header_only(header):
        h = json.dumps(header).encode()
        return struct.pack("<Q", len(h)) + h

    bad_models = [
        ("mlp-out-2^62", with_layer(mlp, 0, out_features=1 << 62), mlp_weights, None, None),
        ("mlp-150M-classes", with_layer(mlp, -1, out_features=150_000_000), mlp_weights, None, None),
        ("cnn-padding-2^62", with_layer(cnn, 0, padding=1 << 62), None, None, None),
        ("cnn-kernel-0", with_layer(cnn, 0, kernel_size=0), None, None, None),
        ("bert-layers-1e12", dict(bert, num_hidden_layers=10 ** 12), bert_weights, bert_files, texts),
        ("bert-hidden-negative", dict(bert, hidden_size=-8), bert_weights, bert_files, texts),
        ("bert-tokenizer-list", bert, bert_weights, {"tokenizer.json": json.dumps(
            {"model": {"type": "WordPiece", "vocab": ["[UNK]", "a"]}}).encode()}, texts),
        ("bert-tokenizer-broken", bert, bert_weights, {"tokenizer.json": b'{"model": {"type": "WordPiece", "vocab": {'},
         texts),
        ("config-not-json", b"{model_type: mlp", mlp_weights, None, None),
        ("config-unknown-type", {"model_type": "transformer-xxl"}, mlp_weights, None, None),
        ("weights-header-huge", mlp, struct.pack("<Q", 1 << 62) + b"{}", None, None),
        ("weights-truncated", mlp, mlp_weights[: len(mlp_weights) // 2], None, None),
        ("weights-header-not-json", mlp, struct.pack("<Q", 4) + b"nope", None, None),
        ("weights-wrong-shapes", mlp, header_only({"layers.0.weight": {"dtype": "F32", "shape": [0],
                                                                       "data_offsets": [0, 0]}}), None, None),
    ]
    for name, config, weights, extra, input_path in bad_models:
        d = model(name, config, weights, extra)
        inp = {"path": input_path, "text_field": "text"} if input_path else {
            "path": os.path.join(REPO, "fixtures/data/digits-test.jsonl"), "features_field": "features"}
        job(nid(), model=d, input=inp, task="embed" if input_path else "predict")
    d = model("weights-is-dir", mlp)
    os.makedirs(os.path.join(d, "model.safetensors"), exist_ok=True)
    job(nid(), model=d)
    d = model("config-fifo", mlp, mlp_weights)
    os.remove(os.path.join(d, "config.json"))
    os.mkfifo(os.path.join(d, "config.json"))
    job(nid(), model=d)

    # Data.
    lines = b"".join(json.dumps({"id": f"r{i}", "features": [0.0] * 64}).encode() + b"\n" for i in range(5))

    def tar_gz(entries, mode="w:gz"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as t:
            for name, content, kind in entries:
                info = tarfile.TarInfo(name)
                info.type = kind
                info.size = len(content) if kind == tarfile.REGTYPE else 0
                if kind == tarfile.SYMTYPE:
                    info.linkname = "/etc/passwd"
                t.addfile(info, io.BytesIO(content) if kind == tarfile.REGTYPE else None)
        return buf.getvalue()

    good_tar = tar_gz([("a.jsonl", lines, tarfile.REGTYPE)])
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.jsonl", lines)
    zip_bytes = bytearray(zbuf.getvalue())
    cd = zip_bytes.rfind(b"PK\x01\x02")
    zip_bytes[cd:cd + 20] = b"\xAA" * 20

    def png_header(width, height, color=0, depth=8):
        def chunk(kind, body):
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))

    def idx(type_code, dims, payload=b""):
        return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload

    def npy(shape_text, payload=b""):
        header = ("{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % shape_text).encode()
        header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload

    bomb = gzip.compress(b"\0" * (200 << 20), compresslevel=9)
    data_inputs = [
        ("random.tar.gz", os.urandom(4096), {"format": "jsonl"}),
        ("truncated.tar.gz", good_tar[: len(good_tar) // 2], {"format": "jsonl"}),
        ("corrupt-cd.zip", bytes(zip_bytes), {"format": "jsonl"}),
        ("bomb.jsonl.gz", bomb, {"format": "jsonl"}),
        ("idx-bomb.tar.gz", tar_gz([("train-labels-idx1-ubyte", idx(8, [200 << 20], b"\0" * (200 << 20)),
                                     tarfile.REGTYPE)]), {"format": "idx"}),
        ("png-huge.tar.gz", tar_gz([("7/a.png", png_header(1 << 14, 1 << 14, 2), tarfile.REGTYPE)]), {"format": "png"}),
        ("png-palette.tar.gz", tar_gz([("7/a.png", png_header(8, 8, 3), tarfile.REGTYPE)]), {"format": "png"}),
        ("bad-rows.csv", b"id,a,b\n1,1,2\n2,x,3\n3,\"unterminated\n", {"format": "csv"}),
        ("bad-utf8.jsonl", b'{"id": "a", "features": [1]}\n{"id": "\xff"}\n' + b"{" * 50 + b"\n", {"format": "jsonl"}),
        ("npy-empty-rows.npy", npy("(1000000000000000000, 0)"), {"format": "npy"}),
        ("idx-2^32.tar.gz", tar_gz([("x-images-idx3-ubyte", idx(8, [0xFFFFFFFF, 8, 8]), tarfile.REGTYPE)]),
         {"format": "idx"}),
        ("empty.jsonl", b"", {"format": "jsonl"}),
        ("links.tar.gz", tar_gz([("/abs.jsonl", lines, tarfile.REGTYPE), ("../up.jsonl", lines, tarfile.REGTYPE),
                                 ("l.jsonl", b"", tarfile.SYMTYPE)]), {"format": "jsonl"}),
        ("long-line.jsonl", b'{"id": "x", "pad": "' + b"y" * (20 << 20) + b'"}\n', {"format": "jsonl"}),
    ]
    for name, content, fields in data_inputs:
        p = file(os.path.join("data", name), content)
        job(nid(), input=dict(fields, path=p, features_field="features"))
    fifo_input = os.path.join(data, "data", "fifo.jsonl")
    os.mkfifo(fifo_input)
    job(nid(), input={"path": fifo_input, "format": "jsonl"})
    return items


# ---------------------------------------------------------------------------------------

class Spool:
    def __init__(self, quern, root, work):
        self.quern, self.root, self.work = quern, root, work
        self.daemons = []
        self.killed = {"daemon": 0, "child": 0}
        self.child_kills = {}
        self.unexpected_exits = []
        self.stopping = False
        self.stop = threading.Event()
        os.makedirs(root, exist_ok=True)
        subprocess.run([quern, "status", root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def command(self, *args):
        return [self.quern, *args, self.root, "--root", REPO, "--root", self.work]

    def start_daemon(self):
        logf = open(os.path.join(self.work, f"daemon-{len(self.daemons)}.log"), "ab")
        p = subprocess.Popen(self.command("watch"), stdout=logf, stderr=logf)
        self.daemons.append(p)
        return p

    def children(self):
        """(pid, job id) of every `quern run-job` child serving this spool."""
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"run-job" in argv:
                i = argv.index(b"run-job")
                if i + 2 < len(argv) and argv[i + 1] == self.root.encode():
                    out.append((int(pid), argv[i + 2].decode(errors="replace")))
        return out

    def kill_a_child(self, rng):
        candidates = [(pid, job) for pid, job in self.children() if self.child_kills.get(job, 0) < MAX_ATTEMPTS - 1]
        if not candidates:
            return False
        pid, job = rng.choice(candidates)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.child_kills[job] = self.child_kills.get(job, 0) + 1
        self.killed["child"] += 1
        return True

    def check_daemons(self):
        if self.stopping:
            return
        for p in self.daemons:
            if p.poll() is not None and p.returncode != -signal.SIGKILL and p not in self.unexpected_exits:
                self.unexpected_exits.append(p)

    def pending(self):
        def names(state):
            d = os.path.join(self.root, state)
            return [n for n in os.listdir(d) if not n.startswith(".")] if os.path.isdir(d) else []
        return names("incoming") + names("active")

    def stop_all(self):
        self.check_daemons()
        self.stopping = True
        for p in self.daemons:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.daemons:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                self.unexpected_exits.append("a daemon did not stop within 60 s of SIGTERM")


def killer(spool, rng, daemon_kills, deadline):
    """Kills a daemon (restarting it) or a child at random intervals."""
    while not spool.stop.is_set() and time.time() < deadline:
        time.sleep(rng.uniform(0.1, 0.6))
        spool.check_daemons()
        if daemon_kills and rng.random() < 0.5:
            alive = [p for p in spool.daemons if p.poll() is None]
            if alive:
                victim = rng.choice(alive)
                victim.kill()
                victim.wait()
                spool.killed["daemon"] += 1
                time.sleep(rng.uniform(0.05, 0.4))
                spool.daemons.remove(victim)
                spool.start_daemon()
                continue
        spool.kill_a_child(rng)


def wait_until_settled(spool, deadline):
    while time.time() < deadline:
        spool.check_daemons()
        if not spool.pending():
            return True
        time.sleep(0.5)
    return False


def reference_outputs(quern, work):
    """Each kind run once, undisturbed: the files every copy must match."""
    spool = os.path.join(work, "reference")
    s = Spool(quern, spool, work)
    for kind in KINDS:
        publish(spool, f"ref-{kind}.json", absolute_manifest(kind, f"ref-{kind}"))
    subprocess.run(s.command("run", "--once"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    refs = {}
    for kind in KINDS:
        d = os.path.join(spool, "done", f"ref-{kind}")
        if not os.path.isdir(d):
            sys.exit(f"torture: the undisturbed run of {kind} did not finish; see {spool}")
        refs[kind] = outputs(d, f"ref-{kind}")
    return refs


def outputs(job_dir, job_id):
    """A job's published files as compared: what differs by nature between runs (timings,
    and how often a killed job was resumed) left out."""
    out = {}
    for dirpath, _, names in os.walk(job_dir):
        for n in names:
            if n in ("job.log", "manifest.json", "attempts.json"):
                continue
            p = os.path.join(dirpath, n)
            data = compare_runs.content(p)
            if n == "report.json":
                report = json.loads(data)
                report.pop("resumed", None)
                data = json.dumps(report, sort_keys=True).encode()
            out[os.path.relpath(p, job_dir)] = data.replace(job_id.encode(), b"JOB")
    return out


def duplicated_rows(job_dir):
    for n in os.listdir(job_dir):
        if n.startswith("results") and n.endswith(".jsonl.gz"):
            ids = [json.loads(line).get("id") for line in gzip.open(os.path.join(job_dir, n)) if line.strip()]
            if len(ids) != len(set(ids)):
                return True
    return False


def account(spool_root, goods, hostiles, refs):
    lost = duplicated = different = unhandled = 0
    notes = []
    done = set(os.listdir(os.path.join(spool_root, "done")))
    failed = set(os.listdir(os.path.join(spool_root, "failed")))
    for job_id, kind in goods:
        places = [s for s, names in (("done", done), ("failed", failed)) if job_id in names]
        if places != ["done"]:
            if len(places) > 1:
                duplicated += 1
                notes.append(f"{job_id}: in {places}")
            else:
                lost += 1
                notes.append(f"{job_id}: in {places or 'nowhere'}"
                             + (f" ({read_error(spool_root, job_id)})" if places == ["failed"] else ""))
            continue
        d = os.path.join(spool_root, "done", job_id)
        if duplicated_rows(d):
            duplicated += 1
            notes.append(f"{job_id}: result rows repeated")
        got = outputs(d, job_id)
        if got != refs[kind]:
            different += 1
            diff = sorted(k for k in set(got) | set(refs[kind]) if got.get(k) != refs[kind].get(k))
            notes.append(f"{job_id} ({kind}): differs in {diff}")
    for name in hostiles:
        places = [(s, n) for s, names in (("done", done), ("failed", failed)) for n in names if n.startswith(name)]
        if not places:
            lost += 1
            notes.append(f"hostile {name}: not in done/ or failed/")
            continue
        if len(places) > 1:
            duplicated += 1
            notes.append(f"hostile {name}: in {places}")
        state, n = places[0]
        if state == "failed":
            code = read_error(spool_root, n)
            if code in ("internal_error", "crashed", None):
                unhandled += 1
                notes.append(f"hostile {name}: failed with {code}")
    return lost, duplicated, different, unhandled, notes


def read_error(spool_root, job_id):
    try:
        with open(os.path.join(spool_root, "failed", job_id, "error.json")) as f:
            e = json.load(f)
        return e.get("code") or e.get("error", {}).get("code")
    except (OSError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quern", default=os.path.join(REPO, ".build/debug/quern"))
    ap.add_argument("--jobs", type=int, default=100, help="good jobs per phase")
    ap.add_argument("--short", action="store_true", help="24 + 12 good jobs (CI)")
    ap.add_argument("--keep", help="work directory to use and keep")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--minutes", type=float, default=30, help="give up on a phase after this long")
    args = ap.parse_args()
    quern = os.path.abspath(args.quern)
    rng = random.Random(args.seed)
    work = os.path.abspath(args.keep) if args.keep else f"/tmp/quern-torture-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    kill_jobs, race_jobs = (24, 12) if args.short else (args.jobs, args.jobs)
    log(f"seed {args.seed}, work in {work}")
    start = time.time()
    refs = reference_outputs(quern, work)
    log(f"reference outputs of {len(KINDS)} kinds in {time.time() - start:.0f} s")

    # Phase 1: one daemon, good jobs and hostile inputs, daemon and children killed.
    s1 = Spool(quern, os.path.join(work, "kill"), work)
    hostiles = hostile_inputs(work)
    goods1 = [(f"k-{i:03d}-{KINDS[i % len(KINDS)]}", KINDS[i % len(KINDS)]) for i in range(kill_jobs)]
    order = [("good", g) for g in goods1] + [("hostile", h) for h in hostiles]
    rng.shuffle(order)
    for what, item in order:
        if what == "good":
            publish(s1.root, item[0] + ".json", absolute_manifest(item[1], item[0]))
        else:
            item[1](s1.root)
    log(f"phase 1: {len(goods1)} good jobs, {len(hostiles)} hostile inputs, one daemon, SIGKILL every 0.1-0.6 s")
    s1.start_daemon()
    deadline = time.time() + args.minutes * 60
    kt = threading.Thread(target=killer, args=(s1, rng, True, deadline))
    kt.start()
    settled1 = wait_until_settled(s1, deadline)
    s1.stop.set()
    kt.join()
    settled1 = wait_until_settled(s1, time.time() + 120) or settled1
    s1.stop_all()
    log(f"phase 1 settled={settled1} in {time.time() - start:.0f} s: killed the daemon {s1.killed['daemon']}x, "
        f"children {s1.killed['child']}x")

    # Phase 2: two daemons and a cron loop on one spool, jobs arriving while they run.
    s2 = Spool(quern, os.path.join(work, "race"), work)
    goods2 = [(f"r-{i:03d}-{KINDS[i % len(KINDS)]}", KINDS[i % len(KINDS)]) for i in range(race_jobs)]
    s2.start_daemon()
    s2.start_daemon()
    cron_runs = [0]

    def cron():
        logf = open(os.path.join(work, "cron.log"), "ab")
        while not s2.stop.is_set():
            rc = subprocess.run(s2.command("run", "--once"), stdout=logf, stderr=logf).returncode
            if rc not in (0, 75):
                s2.unexpected_exits.append(f"run --once exited {rc}")
            cron_runs[0] += 1
            time.sleep(0.5)

    ct = threading.Thread(target=cron)
    ct.start()
    deadline = time.time() + args.minutes * 60
    kt = threading.Thread(target=killer, args=(s2, rng, False, deadline))
    kt.start()
    for job_id, kind in goods2:
        publish(s2.root, job_id + ".json", absolute_manifest(kind, job_id))
        time.sleep(rng.uniform(0, 0.3))
    log(f"phase 2: {len(goods2)} good jobs, two daemons and a cron loop, children killed")
    settled2 = wait_until_settled(s2, deadline)
    s2.stop.set()
    kt.join()
    ct.join()
    s2.stop_all()
    log(f"phase 2 settled={settled2}: children killed {s2.killed['child']}x, {cron_runs[0]} cron runs")

    totals = [0, 0, 0, 0]
    for s, goods, hs in ((s1, goods1, [h[0] for h in hostiles]), (s2, goods2, [])):
        lost, dup, diff, unh, notes = account(s.root, goods, hs, refs)
        leftovers = s.pending()
        lost += len(leftovers)
        notes += [f"left in incoming/ or active/: {n}" for n in leftovers]
        unh += len(s.unexpected_exits)
        notes += [f"daemon exited on its own: {p if isinstance(p, str) else p.returncode}" for p in s.unexpected_exits]
        for note in notes:
            log(f"  {os.path.basename(s.root)}: {note}")
        totals = [a + b for a, b in zip(totals, (lost, dup, diff, unh))]
    jobs = len(goods1) + len(goods2)
    print(f"torture: {jobs} jobs, {len(hostiles)} hostile inputs, {s1.killed['daemon']} daemon kills, "
          f"{s1.killed['child'] + s2.killed['child']} child kills, {time.time() - start:.0f} s: "
          f"lost {totals[0]}, duplicated {totals[1]}, different {totals[2]}, unhandled {totals[3]}", flush=True)
    if not args.keep and not any(totals):
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if any(totals) else 0)


if __name__ == "__main__":
    main()
