#!/usr/bin/env python3
"""Compares Quern's byte-level BPE tokenizer with Hugging Face `tokenizers`, id for id
and string for string.

Usage: check-bpe-tokenizer.py QUERN MODEL_DIR [CORPUS.jsonl ...] [--quick]
  QUERN       the quern binary
  MODEL_DIR   a directory with a BPE tokenizer.json (SmolLM2's, or fixtures/text/bpe/*)
  CORPUS      JSONL files with a "text" field (default: ../shared/corpora/debdesc.jsonl and
              fixtures/text/tokenizer-hard-cases.jsonl)
  --quick     1,000 corpus texts and every 16th code point, for a first look

Runs `quern tokenize` (with and without special tokens) on: every corpus text; every
Unicode code point alone, inside a word, after a space and after an apostrophe; the NFD
form of every code point that has one; 20,000 random strings (10,000 of random code
points, 10,000 of random bytes decoded with errors="replace"). Then `quern tokenize
--decode` (keeping and skipping special tokens, at once and streamed one id at a time)
on the ids `tokenizers` gave for the corpus and the random strings, and on 20,000
random id sequences. Prints each mismatch (first 10 per set) and the totals; exits 1 on
any mismatch. Needs a Python with `tokenizers` (the anchors venvs have it).
"""
import json, os, random, subprocess, sys, tempfile, unicodedata

from tokenizers import Tokenizer

args = [a for a in sys.argv[1:] if a != "--quick"]
quick = "--quick" in sys.argv
quern, model = args[0], args[1]
here = os.path.dirname(os.path.abspath(__file__))
corpora = args[2:] or [os.path.join(here, "../../shared/corpora/debdesc.jsonl"),
                       os.path.join(here, "../fixtures/text/tokenizer-hard-cases.jsonl")]
texts = [json.loads(l)["text"] for c in corpora for l in open(c, encoding="utf-8") if l.strip()]
if quick:
    texts = texts[:1000]
tok = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
tok.no_padding()
tok.no_truncation()
size = tok.get_vocab_size(with_added_tokens=True)
rng = random.Random(16)


def codepoints():
    step = 16 if quick else 1
    return [f"{c}A{c} b{c}x {c}'{c}" for c in map(chr, range(0, 0x110000, step)) if not 0xD800 <= ord(c) <= 0xDFFF]


def decomposed():
    out = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        d = unicodedata.normalize("NFD", chr(cp))
        if d != chr(cp):
            out.append(f"x{d} {d}")
    return out


def random_strings(n):
    ranges = [(0x20, 0x7E), (0x00, 0x20), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x52F), (0x900, 0xDFF),
              (0x1100, 0x11FF), (0x2000, 0x206F), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
              (0x1F300, 0x1FAFF), (0x0, 0x10FFFF)]
    out = []
    for _ in range(n):
        s = []
        for _ in range(rng.randint(1, 30)):
            lo, hi = rng.choice(ranges)
            cp = rng.randint(lo, hi)
            s.append(chr(0xFFFD if 0xD800 <= cp <= 0xDFFF else cp))
            if rng.random() < 0.3:
                s.append(rng.choice([" ", "  ", "\n", "'s", "'LL", "\u017f", "123", "\r\n", "\t", "\u3000"]))
        out.append("".join(s))
    for _ in range(n):
        out.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 60))).decode("utf-8", errors="replace"))
    return out


def run_quern(rows, flags):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        path = f.name
    try:
        out = subprocess.run([quern, "tokenize", model, "--input", path] + flags, capture_output=True)
        if out.returncode != 0:
            sys.exit(f"quern tokenize failed: {out.stderr.decode()}")
        return [json.loads(l) for l in out.stdout.decode().split("\n") if l]  # not splitlines: U+2028
    finally:
        os.unlink(path)


failed = 0


def report(name, rows, bad, show):
    global failed
    print(f"{name}: {len(rows) - len(bad)} of {len(rows)} identical")
    for i in bad[:10]:
        print("  " + show(i))
    failed += len(bad)


def check_encode(name, strings):
    for special in (True, False):
        ours = run_quern([{"text": s} for s in strings], [] if special else ["--no-special-tokens"])
        theirs = [e.ids for e in tok.encode_batch(strings, add_special_tokens=special)]
        bad = [i for i in range(len(strings)) if ours[i]["ids"] != theirs[i]]
        report(f"{name}{'' if special else ', no special tokens'}", strings, bad,
               lambda i: f"{strings[i]!r}\n    quern      {ours[i]['ids']}\n    tokenizers {theirs[i]}")


def check_decode(name, id_lists):
    for skip in (False, True):
        ours = run_quern([{"ids": ids} for ids in id_lists], ["--decode"] + (["--skip-special-tokens"] if skip else []))
        theirs = tok.decode_batch(id_lists, skip_special_tokens=skip)
        bad = [i for i in range(len(id_lists)) if ours[i]["text"] != theirs[i] or ours[i]["streamed"] != theirs[i]]
        report(f"{name}{', skipping special tokens' if skip else ''}", id_lists, bad,
               lambda i: f"{id_lists[i]}\n    quern      {ours[i]['text']!r} streamed {ours[i]['streamed']!r}"
                         f"\n    tokenizers {theirs[i]!r}")


randoms = random_strings(1000 if quick else 10000)
check_encode("corpus texts", texts)
check_encode("every code point", codepoints())
check_encode("decomposed code points", decomposed())
check_encode("random strings", randoms)
check_decode("decode(encode(corpus))", [e.ids for e in tok.encode_batch(texts)])
check_decode("decode(encode(random strings))", [e.ids for e in tok.encode_batch(randoms)])
check_decode("decode(random ids)", [[rng.randrange(size + 2) for _ in range(rng.randint(1, 16))]
                                    for _ in range(2000 if quick else 20000)])
print(f"{failed} mismatches")
sys.exit(1 if failed else 0)
