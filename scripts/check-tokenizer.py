#!/usr/bin/env python3
"""Compares Quern's encoder tokenizer (WordPiece or Unigram, as the model's tokenizer.json
says) with Hugging Face `tokenizers`, id for id.

Usage: check-tokenizer.py QUERN MODEL_DIR [CORPUS.jsonl ...]
  QUERN       the quern binary
  MODEL_DIR   a model directory with tokenizer.json (all-MiniLM-L6-v2: scripts/fetch-minilm.sh)
  CORPUS      JSONL files with a "text" field (default: ../shared/corpora/debdesc.jsonl and
              fixtures/text/tokenizer-hard-cases.jsonl)

Runs `quern tokenize` on: every corpus text (untruncated, and at 256 and 16 tokens);
every Unicode code point alone, inside a word and after a space; sentence pairs at
several max lengths. Prints each mismatch (first 20 per set) and the totals; exits 1 on
any mismatch. Needs a Python with `tokenizers` (the anchors venv has it).
"""
import json, os, random, subprocess, sys, tempfile

from tokenizers import Tokenizer

quern, model = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
corpora = sys.argv[3:] or [os.path.join(here, "../../shared/corpora/debdesc.jsonl"),
                           os.path.join(here, "../fixtures/text/tokenizer-hard-cases.jsonl")]
texts = [json.loads(l)["text"] for c in corpora for l in open(c, encoding="utf-8") if l.strip()]
tok = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
tok.no_padding()


def codepoints():
    out = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        out.append(f"{c}A{c} b{c}x {c}")
    return out


def ours(rows, max_length, pair):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"text": r[0], "b": r[1]} if pair else {"text": r}) + "\n")
        path = f.name
    cmd = [quern, "tokenize", model, "--input", path]
    if pair:
        cmd += ["--pair-field", "b"]
    if max_length:
        cmd += ["--max-length", str(max_length)]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode().splitlines()
    os.unlink(path)
    return [json.loads(l) for l in out]


def theirs(rows, max_length, pair):
    if max_length:
        tok.enable_truncation(max_length)
    else:
        tok.no_truncation()
    enc = tok.encode_batch([tuple(r) for r in rows] if pair else rows)
    return [{"ids": e.ids, "type_ids": e.type_ids} if pair else {"ids": e.ids} for e in enc]


failed = 0
def check(name, rows, max_length=None, pair=False):
    global failed
    a, b = ours(rows, max_length, pair), theirs(rows, max_length, pair)
    bad = [i for i in range(len(rows)) if a[i] != b[i]]
    print(f"{name}: {len(rows) - len(bad)} of {len(rows)} identical")
    for i in bad[:20]:
        print(f"  {rows[i]!r}\n    quern      {a[i]}\n    tokenizers {b[i]}")
    failed += len(bad)


check("corpus texts", texts)
check("corpus texts, max 256", texts, 256)
check("corpus texts, max 16", texts, 16)
check("every code point", codepoints())
rng = random.Random(1)
pairs = [(rng.choice(texts), rng.choice(texts)) for _ in range(20000)]
for n in (None, 8, 16, 32, 64):
    check(f"pairs, max {n}", pairs, n, pair=True)
sys.exit(1 if failed else 0)
