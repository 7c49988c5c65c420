#!/usr/bin/env python3
"""Makes the byte-level BPE fixtures under fixtures/text/bpe/NAME/: a tokenizer.json and
golden.jsonl, the ids and decodings Hugging Face `tokenizers` gives, so the unit tests
check Quern's BPE tokenizer without Python.

  smollm2         SmolLM2-135M's tokenizer (ByteLevel, GPT-2's regex) cut to the byte
                  alphabet, its 17 added tokens and the first 3,000 merges
  llama3          a BPE trained here on debdesc with Llama 3's pipeline: its Split regex,
                  ByteLevel, ignore_merges, a <|begin_of_text|> template and added tokens
                  with lstrip, rstrip, single_word and normalized
  qwen2           the same with Qwen2's: NFC, its Split regex (one digit at a time), and
                  normalized added tokens written in NFD
  starcoder-unk   the smollm2 cut with Digits + ByteLevel(add_prefix_space), some bytes
                  missing from the vocabulary and a fused unk_token
  splits          the smollm2 cut behind literal Splits of all five behaviors, Digits in
                  runs, Qwen2's regex and ByteLevel(add_prefix_space) without its own

golden.jsonl lines: {"text", "ids" (special tokens added), "plain" (not added),
"decoded" (decode(ids) keeping specials), "skipped" (dropping them)}, and
{"decode": [ids], "decoded", "skipped"} for random id sequences (invalid UTF-8
included). The texts: the hard cases, 150 debdesc texts, added-token cases, random code
point strings and random bytes decoded with errors="replace".

Usage: python make_bpe_fixture.py SMOLLM2_DIR CORPUS.jsonl   (a Python with tokenizers)
"""
import json, os, random, sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

smollm2, corpus = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "../fixtures/text/bpe")
texts = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]
hard = [json.loads(l)["text"] for l in open(os.path.join(here, "../fixtures/text/tokenizer-hard-cases.jsonl"), encoding="utf-8")]
rng = random.Random(16)


def random_text(r):
    """Random code points from ranges that matter (ASCII, Latin, marks, CJK, emoji, all)."""
    ranges = [(0x20, 0x7E), (0x00, 0x20), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x52F), (0x900, 0xDFF),
              (0x1100, 0x11FF), (0x2000, 0x206F), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
              (0x1F300, 0x1FAFF), (0x0, 0x10FFFF)]
    s = []
    for _ in range(r.randint(1, 24)):
        lo, hi = r.choice(ranges)
        cp = r.randint(lo, hi)
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0xFFFD
        s.append(chr(cp))
        if r.random() < 0.3:
            s.append(r.choice([" ", "  ", "\n", "'s", "'LL", "ſ", "123", "\r\n", "\t"]))
    return "".join(s)


def cut_smollm2(merge_count=3000):
    """SmolLM2's tokenizer.json with the byte alphabet, the added tokens and the first merges."""
    full = json.load(open(os.path.join(smollm2, "tokenizer.json"), encoding="utf-8"))
    vocab, merges = full["model"]["vocab"], full["model"]["merges"][:merge_count]
    alphabet = set(pre_tokenizers.ByteLevel.alphabet())
    keep = {t for t in vocab if len(t) == 1 and t in alphabet} | {t["content"] for t in full["added_tokens"]}
    for a, b in merges:
        assert a in keep and b in keep, (a, b)
        keep.add(a + b)
    order = sorted(keep, key=lambda t: vocab[t])
    ids = {t: i for i, t in enumerate(order)}
    full["model"]["vocab"] = ids
    full["model"]["merges"] = merges
    for t in full["added_tokens"]:
        t["id"] = ids[t["content"]]
    return full


def trained(pattern, nfc):
    """A tiny BPE trained on debdesc and the hard cases with a Split regex and ByteLevel."""
    tok = Tokenizer(BPE(ignore_merges=pattern == LLAMA3))
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(vocab_size=2500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts + hard * 20 + [random_text(rng) for _ in range(2000)], trainer)
    return tok


def save(name, tok_or_json, cases):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "tokenizer.json")
    if isinstance(tok_or_json, dict):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(tok_or_json, f, ensure_ascii=False, separators=(",", ":"))
    else:
        tok_or_json.save(path, pretty=False)
    tok = Tokenizer.from_file(path)
    r = random.Random(name)
    sample = r.sample(texts, 150)
    strings = hard + sample + cases + [random_text(r) for _ in range(120)]
    strings += [bytes(r.randrange(256) for _ in range(r.randint(1, 40))).decode("utf-8", errors="replace")
                for _ in range(40)]
    size = tok.get_vocab_size(with_added_tokens=True)
    with open(os.path.join(d, "golden.jsonl"), "w", encoding="utf-8") as f:
        def line(o):
            f.write(json.dumps(o, ensure_ascii=False, separators=(",", ":")) + "\n")
        for t in strings:
            ids = tok.encode(t).ids
            line({"text": t, "ids": ids, "plain": tok.encode(t, add_special_tokens=False).ids,
                  "decoded": tok.decode(ids, skip_special_tokens=False),
                  "skipped": tok.decode(ids, skip_special_tokens=True)})
        for _ in range(120):
            ids = [r.randrange(size + 3) for _ in range(r.randint(1, 12))]
            line({"decode": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                  "skipped": tok.decode(ids, skip_special_tokens=True)})
    print(f"{name}: {size} tokens, {len(strings)} texts")


# smollm2: the real thing, cut.
cut = cut_smollm2()
save("smollm2", cut, ["<|im_start|>user\nHi there<|im_end|>\n", "<|endoftext|><|endoftext|>x", "a<|im_end|>b",
                      "<|im_start|><|im_start|", "<repo_name><reponame>", " <file_sep> "])

# llama3: Llama 3's pipeline on a tiny vocabulary, with added tokens of every kind.
llama = trained(LLAMA3, nfc=False)
llama.add_special_tokens(["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                          "<|end_header_id|>", "<|reserved_special_token_0|>"])
llama.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False),
                          AddedToken("<sep>", lstrip=True, rstrip=True, special=True, normalized=False)])
llama.add_tokens([AddedToken("[WORD]", single_word=True, normalized=False),
                  AddedToken("nice", single_word=True, normalized=True),
                  AddedToken("the", normalized=False),  # also a vocabulary token: keeps its id
                  AddedToken("<|x|>", normalized=False), AddedToken("<|x|>y", normalized=False),
                  AddedToken(" spaced", rstrip=True, normalized=True)])
bos = llama.token_to_id("<|begin_of_text|>")
llama.post_processor = processors.Sequence([
    processors.ByteLevel(trim_offsets=False),
    processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                  special_tokens=[("<|begin_of_text|>", bos)])])
save("llama3", llama, [
    "<|begin_of_text|>Hello<|eot_id|>", "a <mask> b", "a   <mask>b", "<mask>", "  <mask>  ", "x[WORD]y", "x [WORD] y",
    "[WORD]", "([WORD])", "é[WORD]", "nice things", "niceties", "a nice", "<sep>   after", "before   <sep>",
    "a\u3000<sep>\u2003b", "<|x|>y <|x|>z", "<|x|", "the theme the", "xthe", "a spaced  word", " spaced",
    "I'LL, he'S, she'Ll, it'ſ, we'RE", "1234567 12 1", "\r\n\r\n  \n x", "<|start_header_id|>user<|end_header_id|>\n\nhi"])

# qwen2: NFC, Qwen2's regex, normalized added tokens written decomposed.
qwen = trained(QWEN2, nfc=True)
qwen.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
qwen.add_tokens([AddedToken("cafe\u0301", normalized=True), AddedToken("A\u030a!", normalized=True, lstrip=True),
                 AddedToken("<tool>", normalized=False)])
save("qwen2", qwen, [
    "<|im_start|>system\nYou are<|im_end|>\n", "un café", "un cafe\u0301", "CAFÉ", "Å!", "x  A\u030a!", "x  Å!",
    "\u1100\u1161\u11a8 \u1100\u1176 \u1113\u1161 \uac00\u11a8", "a\u0301\u0316 a\u0316\u0301 q\u0307\u0323",
    "\u1e0a\u0323 \u1e0c\u0307", "\u0b47\u0b3e \u0dd9\u0dcf", "a\u1df6\u0316 a\u1ac1\u0316", "\U00011935\U00011930",
    "12345 x1y22", "<tool><tool>"])

# starcoder-unk: digits apart, a prefix space per piece, bytes 0x80-0x8F missing, unk fused.
star = cut_smollm2()
star["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": True},
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
byte_char = {b: c for b, c in zip(range(256), [None] * 256)}
alphabet = pre_tokenizers.ByteLevel.alphabet()
# Which characters stand for 0x80-0x8F: rebuild GPT-2's table.
bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs, n = list(bs), 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + n)
        n += 1
gone = {chr(c) for b, c in zip(bs, cs) if 0x80 <= b <= 0x8F}
vocab = {t: i for t, i in star["model"]["vocab"].items() if not any(ch in gone for ch in t)}
star["model"]["merges"] = [m for m in star["model"]["merges"]
                           if not any(ch in gone for ch in m[0] + m[1])]
order = sorted(vocab, key=lambda t: vocab[t])
star["model"]["vocab"] = {t: i for i, t in enumerate(order)}
for t in star["added_tokens"]:
    t["id"] = star["model"]["vocab"][t["content"]]
star["model"]["unk_token"] = "<|endoftext|>"
star["model"]["fuse_unk"] = True
save("starcoder-unk", star, ["x1234y", "a 12 b", "Ü ä ö ß ŀ", "Ā ā Ă ă", "ĀĀĀ x", "<|endoftext|>Āb"])

# splits: every Split behavior on literal patterns, then ByteLevel with GPT-2's regex.
splits = cut_smollm2()
splits["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"String": " - "}, "behavior": "MergedWithNext", "invert": False},
    {"type": "Split", "pattern": {"String": ","}, "behavior": "Contiguous", "invert": False},
    {"type": "Split", "pattern": {"String": "::"}, "behavior": "Removed", "invert": False},
    {"type": "Split", "pattern": {"String": "."}, "behavior": "MergedWithPrevious", "invert": False},
    {"type": "Split", "pattern": {"String": "ab"}, "behavior": "Isolated", "invert": True},
    {"type": "Digits", "individual_digits": False},
    {"type": "Split", "pattern": {"Regex": QWEN2}, "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}]}
save("splits", splits, ["a - b - c", "x,,y,z,", "a::b::::c", "end. next.. last.", "cabbage abab ab", " - ,::.ab",
                        "x12345y 6 78"])
