#!/usr/bin/env python3
"""Makes fixtures/text/tiny-bert/ (tokenizer.json, vocab.txt) and
fixtures/text/tokenizer-golden.jsonl: a small WordPiece vocabulary cut from
all-MiniLM-L6-v2's (the specials, every single-character token with and without ##,
and the 1,500 tokens most used on debdesc), and the ids Hugging Face `tokenizers` gives
with it for the hard cases, 150 debdesc texts and sentence pairs at several lengths.
The unit tests check Quern's tokenizer against these ids without needing Python.

Usage: python make_tokenizer_fixture.py MINILM_DIR CORPUS.jsonl   (a Python with tokenizers)
"""
import collections, json, os, random, sys

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

minilm, corpus = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "../fixtures/text")
full = Tokenizer.from_file(os.path.join(minilm, "tokenizer.json"))
full.no_padding(); full.no_truncation()
vocab = full.get_vocab()
texts = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]
hard = [json.loads(l)["text"] for l in open(os.path.join(out, "tokenizer-hard-cases.jsonl"), encoding="utf-8")]

counts = collections.Counter(t for e in full.encode_batch(texts) for t in e.tokens)
keep = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
keep |= {t for t in vocab if len(t) == 1 or (t.startswith("##") and len(t) == 3)}
keep |= {t for t, _ in counts.most_common(1500)}
tokens = sorted(keep, key=lambda t: vocab[t])            # MiniLM's order, renumbered densely
small = {t: i for i, t in enumerate(tokens)}

tok = Tokenizer(WordPiece(small, unk_token="[UNK]", continuing_subword_prefix="##", max_input_chars_per_word=100))
tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
tok.post_processor = processors.TemplateProcessing(
    single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
    special_tokens=[("[CLS]", small["[CLS]"]), ("[SEP]", small["[SEP]"])])
tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
d = os.path.join(out, "tiny-bert")
os.makedirs(d, exist_ok=True)
tok.save(os.path.join(d, "tokenizer.json"))
with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
    f.write("".join(t + "\n" for t in tokens))

rng = random.Random(7)
sample = rng.sample(texts, 150)
pairs = [(rng.choice(sample + hard), rng.choice(sample + hard)) for _ in range(100)]
with open(os.path.join(out, "tokenizer-golden.jsonl"), "w", encoding="utf-8") as f:
    for max_length in (None, 12):
        if max_length: tok.enable_truncation(max_length)
        else: tok.no_truncation()
        for t in hard + sample:
            f.write(json.dumps({"text": t, "max_length": max_length, "ids": tok.encode(t).ids}, ensure_ascii=False) + "\n")
        for a, b in pairs:
            e = tok.encode(a, b)
            f.write(json.dumps({"text": a, "pair": b, "max_length": max_length, "ids": e.ids, "type_ids": e.type_ids},
                               ensure_ascii=False) + "\n")
print(f"{len(tokens)} tokens; golden ids for {2 * (len(hard) + len(sample) + len(pairs))} inputs in {out}")
