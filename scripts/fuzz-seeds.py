#!/usr/bin/env python3
"""Writes the fuzz harnesses' seed corpus under Tests/Fuzz/NAME/ (standard library only).

    python3 scripts/fuzz-seeds.py

Seeds are small valid inputs of each format plus a few classic near-misses, so the
fuzzer starts from the shapes a parser accepts. Findings (inputs that once crashed)
live next to them as finding-*; this script never deletes anything.
"""
import bz2, gzip, io, json, lzma, os, struct, tarfile, zipfile, zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fuzz")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixture(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


# manifest: the bundled example jobs and a few near-misses.
for name in sorted(os.listdir(os.path.join(ROOT, "jobs"))):
    if name.endswith(".json") and name != "manifest.schema.json":
        put("manifest", name, fixture(os.path.join("jobs", name)))
put("manifest", "escape.json", '{"version":1,"task":"predict","model":"../../etc","input":{"path":"/etc/passwd"}}')
put("manifest", "limits.json", '{"version":1,"task":"embed","model":"m","input":{"path":"x.jsonl"},'
    '"limits":{"max_attempts":0,"max_memory_mb":1e30,"max_seconds":-1}}')
put("manifest", "deep.json", "[" * 300 + "]" * 300)

# json: the corners of RFC 8259.
put("json", "numbers.json", '[0,-0,1e308,1e309,-1e-400,123456789012345678901234567890,9223372036854775807,'
    '-9223372036854775808,9223372036854775808,0.1,1E+2,2.5e-3]')
put("json", "strings.json", '{"a":"\\u00e9\\ud83d\\ude00","b":"\\"\\\\\\/\\b\\f\\n\\r\\t","c":"\\ud800","d":"caf\xc3\xa9"}'.encode("latin-1"))
put("json", "nested.json", '{"x":{"y":[{"z":null},true,false,[]]},"x2":{}, "dup":1, "dup":2}')
put("json", "bad.json", b'{"a":1,}\xff')

# csv: features with labels, texts with quoting.
put("csv", "digits.csv", b"".join(fixture("fixtures/data/digits-test.csv").splitlines(True)[:4]))
put("csv", "texts.csv", 'id,text,pair\n1,"hello, ""world""",b\n2,"multi\nline",c\n3,plain,\n')
put("csv", "bad.csv", 'id,label,a,b\n1,x,1.5,nan\n2,y,"1\n3,z,1e39,-\n4,,"2"x,3\r\n')

# jsonl: every field shape.
put("jsonl", "digits.jsonl", b"".join(fixture("fixtures/data/digits-test.jsonl").splitlines(True)[:3]))
put("jsonl", "texts.jsonl", '{"id":"a","text":"hello","pair":"there","label":"pos","a":1,"b":2.5}\n'
    '{"id":7,"text":"\\u00e9t\\u00e9","label":3}\n\n{"text":null}\n[1,2]\n')
put("jsonl", "bad.jsonl", b'{"id":"x","features":[1,2,1e999],"label":"l"}\n{"id":\n{"text":"\xc3("}\r\n')

# txt
put("txt", "lines.txt", "first line\nsecond line\r\n\n   \nlast without newline")
put("txt", "unicode.txt", "naïve café\n中文\n🙂\n".encode())
put("txt", "bad.txt", b"ok\n\xff\xfe bad utf8\n\x00nul\n")


# npy: format 1.0 and 2.0 headers, several dtypes.
def npy(descr, shape, payload, version=1):
    dims = f"{shape[0]}," if len(shape) == 1 else ", ".join(map(str, shape))
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}".encode()
    pre = 10 if version == 1 else 12
    header += b" " * ((64 - (pre + len(header) + 1) % 64) % 64) + b"\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header + payload


put("npy", "f4.npy", npy("<f4", (2, 3), struct.pack("<6f", 0, 1, 2.5, -3, 1e30, 7)))
put("npy", "u1-v2.npy", npy("|u1", (3, 2, 2), bytes(range(12)), version=2))
put("npy", "labels-i8.npy", npy("<i8", (4,), struct.pack("<4q", 0, 1, 9, -1)))
put("npy", "f8-truncated.npy", npy("<f8", (5, 2), struct.pack("<3d", 1, 2, float("nan"))))


# idx: images and labels.
def idx(type_code, dims, payload):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


put("idx", "images-u8", idx(0x08, (2, 2, 3), bytes(range(12))))
put("idx", "labels-u8", idx(0x08, (4,), bytes([0, 1, 2, 9])))
put("idx", "f32", idx(0x0D, (1, 2), struct.pack(">2f", 1.5, -2)))
put("idx", "i16-labels", idx(0x0B, (2,), struct.pack(">2h", -1, 300)))
put("idx", "truncated", idx(0x0C, (3, 4), struct.pack(">3i", 1, 2, 3)))


# png: gray, RGB, RGBA, every filter.
def png(width, height, color_type, rows, filters):
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    raw = b""
    for y, row in enumerate(rows):
        raw += bytes([filters[y % len(filters)]]) + bytes(row[: width * channels])

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


put("png", "gray.png", png(3, 3, 0, [[0, 128, 255]] * 3, [0]))
put("png", "rgb-filters.png", png(2, 5, 2, [[10 * i + j for j in range(6)] for i in range(5)], [0, 1, 2, 3, 4]))
put("png", "rgba.png", png(2, 2, 6, [[255, 0, 0, 255, 0, 255, 0, 128]] * 2, [1]))
with tarfile.open(os.path.join(ROOT, "fixtures/data/digits-png.tar.gz")) as t:
    member = next(m for m in t.getmembers() if m.isfile() and m.name.endswith(".png"))
    put("png", "digit.png", t.extractfile(member).read())


# archive: the containers libarchive reads for us.
lines = b'{"text":"one"}\n{"text":"two"}\n'


def tar_bytes(mode, entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


plain = [("a.jsonl", lines, tarfile.REGTYPE), ("dir/b.jsonl", lines, tarfile.REGTYPE)]
put("archive", "plain.tar", tar_bytes("w", plain))
put("archive", "gz.tar.gz", tar_bytes("w:gz", plain))
put("archive", "hostile.tar.bz2", tar_bytes("w:bz2", [
    ("../up.jsonl", lines, tarfile.REGTYPE), ("/abs.jsonl", lines, tarfile.REGTYPE),
    ("link.jsonl", b"", tarfile.SYMTYPE), ("ok.jsonl", lines, tarfile.REGTYPE)]))
put("archive", "xz.tar.xz", lzma.compress(tar_bytes("w", plain)))
z = io.BytesIO()
with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
    f.writestr("a.jsonl", lines)
    f.writestr("b.jsonl", lines * 3)
put("archive", "deflate.zip", z.getvalue())
put("archive", "plain.gz", gzip.compress(lines))

# config: every family's fixtures.
for name, path in [("bert.json", "fixtures/models/tiny-bert/config.json"),
                   ("bert-classifier.json", "fixtures/models/tiny-bert-classifier/config.json"),
                   ("mlp.json", "fixtures/models/digits-mlp/config.json"),
                   ("mlp-arch.json", "fixtures/models/digits-mlp-arch/config.json"),
                   ("cnn-arch.json", "fixtures/models/digits-cnn-arch/config.json")]:
    put("config", name, fixture(path))
put("config", "huge.json", '{"model_type":"mlp","input_size":4,"layers":[{"type":"linear","out_features":4611686018427387904}]}')

# safetensors: the fixture MLP and small hand-made files.
put("safetensors", "digits-mlp.safetensors", fixture("fixtures/models/digits-mlp/model.safetensors"))


def safetensors(entries, metadata=None):
    header, data = {}, b""
    for name, dtype, shape, payload in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


put("safetensors", "dtypes.safetensors", safetensors([
    ("a", "F32", [2], struct.pack("<2f", 1, 2)), ("b", "F16", [2], struct.pack("<2e", 1, -2)),
    ("c", "BF16", [1], b"\x80\x3f"), ("d", "I8", [2, 2], bytes([1, 255, 3, 128])),
    ("e", "F64", [1], struct.pack("<d", 3.5)), ("z", "F32", [0, 4], b"")], {"format": "pt"}))
put("safetensors", "overlap.safetensors", struct.pack("<Q", 80) +
    b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}'[:80]
    + b"\0" * 8)

# gguf: the fixture with every metadata type and block format, and small hand-made files.
put("gguf", "types.gguf", fixture("fixtures/models/tiny-gguf/types.gguf"))


def gguf(keys, tensors, data, alignment=32, version=3):
    def s(text):
        b = text.encode()
        return struct.pack("<Q", len(b)) + b
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(keys))
    for key, vtype, value in keys:
        out += s(key) + struct.pack("<I", vtype) + value
    for name, dims, gtype, offset in tensors:
        out += s(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", gtype, offset)
    return out + b"\0" * (-len(out) % alignment) + data


llama_keys = [("general.architecture", 8, struct.pack("<Q", 5) + b"llama"),
              ("llama.block_count", 4, struct.pack("<I", 1)),
              ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + struct.pack("<Q", 1) + b"a"
               + struct.pack("<Q", 2) + b"\xc4\xa0"),
              ("nested", 9, struct.pack("<IQ", 9, 2) + struct.pack("<IQ", 5, 1) + struct.pack("<i", -1)
               + struct.pack("<IQ", 0, 0))]
q4k_block = bytes((i * 37 + 11) % 256 for i in range(144))
put("gguf", "small.gguf", gguf(llama_keys, [("norm", [8], 0, 0), ("w", [256, 1], 12, 32)],
                               struct.pack("<8f", *range(8)) + q4k_block))
put("gguf", "aligned-64.gguf", gguf([("general.alignment", 4, struct.pack("<I", 64))],
                                    [("h", [4, 2], 1, 0), ("q", [32], 8, 64)],
                                    struct.pack("<8e", 1, -2, 0.5, 65504, 0, -0.0, 1e-7, 3)
                                    + b"\0" * 48 + b"\x00\x3c" + bytes(range(32)), alignment=64))
put("gguf", "misaligned.gguf", gguf([], [("x", [4], 0, 4)], b"\0" * 32))
put("gguf", "huge-array.gguf", gguf([("t", 9, struct.pack("<IQ", 8, 10**18))], [], b""))

# tokenizer and vocab: a small BERT vocabulary in both forms.
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "un", "##aff", "##able", "##ing",
         ",", "!", "cafe", "naive", "中", "文", "[unused0]"]
put("vocab", "small.txt", "\n".join(vocab) + "\n")
put("vocab", "crlf.txt", "\r\n".join(vocab))
put("vocab", "no-unk.txt", "[PAD]\n[CLS]\n[SEP]\nhello\n")
base = json.loads(fixture("fixtures/text/tiny-bert/tokenizer.json"))
base["model"]["vocab"] = {t: i for i, t in enumerate(vocab)}
put("tokenizer", "template.json", json.dumps(base))
bert = dict(base)
bert["post_processor"] = {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]}
bert["normalizer"] = {"type": "BertNormalizer", "lowercase": False, "strip_accents": True,
                      "clean_text": False, "handle_chinese_chars": False}
put("tokenizer", "bert-processing.json", json.dumps(bert))
odd = dict(base)
odd["added_tokens"] = [{"id": 40, "content": "[EXTRA]", "special": True}]
odd["model"] = dict(base["model"], vocab={"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "x": 2147483647})
put("tokenizer", "odd-ids.json", json.dumps(odd))

# bpe: small byte-level BPE tokenizer.json files, one per pipeline, and near-misses.
def byte_chars():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = list(bs), 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def bpe(pre, merges=(("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n"), ("in", "g"), ("1", "2")),
        pairs=False, **extra):
    vocab = {c: i for i, c in enumerate(byte_chars())}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    merge_list = [[a, b] if pairs else f"{a} {b}" for a, b in merges]
    doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
           "pre_tokenizer": pre, "post_processor": None, "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False, "byte_fallback": False,
                     "ignore_merges": False, "vocab": vocab, "merges": merge_list}}
    for k, v in extra.items():
        if k in doc["model"]:
            doc["model"][k] = v
        else:
            doc[k] = v
    return json.dumps(doc, ensure_ascii=False)


def split(regex):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}


LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
put("bpe", "gpt2.json", bpe(byte_level, merges=[("\u0120", "t"), ("h", "e"), ("\u0120t", "he")]))
put("bpe", "llama3.json", bpe(split(LLAMA3), ignore_merges=True, added_tokens=[
    {"id": 300, "content": "<|begin_of_text|>", "single_word": False, "lstrip": False, "rstrip": False,
     "normalized": False, "special": True},
    {"id": 301, "content": "<mask>", "single_word": False, "lstrip": True, "rstrip": True, "normalized": False,
     "special": True},
    {"id": 302, "content": "[WORD]", "single_word": True, "lstrip": False, "rstrip": False, "normalized": True,
     "special": False}],
    post_processor={"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                                  {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [], "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [262],
                                                              "tokens": ["<|begin_of_text|>"]}}}]}))
put("bpe", "qwen2.json", bpe(split(QWEN2), normalizer={"type": "NFC"}, added_tokens=[
    {"id": 300, "content": "cafe\u0301", "single_word": False, "lstrip": False, "rstrip": False,
     "normalized": True, "special": False}]))
put("bpe", "digits-unk.json", bpe({"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": True}, dict(byte_level, add_prefix_space=True)]},
    unk_token="h", fuse_unk=True))
put("bpe", "splits.json", bpe({"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"String": " - "}, "behavior": "MergedWithNext", "invert": False},
    {"type": "Split", "pattern": {"String": ","}, "behavior": "Contiguous", "invert": True},
    {"type": "Split", "pattern": {"String": "::"}, "behavior": "Removed", "invert": False},
    {"type": "Split", "pattern": {"String": "."}, "behavior": "MergedWithPrevious", "invert": False},
    byte_level]}))
put("bpe", "pair-merges.json", bpe(byte_level, pairs=True))
put("bpe", "hostile.json", bpe(byte_level, merges=[("h", "q"), ("x", "y")]).replace('"vocab": {', '"vocab": {"big": 2147483647, '))

# bpe-text: what a BPE tokenizer is given (also read as pairs of id bytes).
put("bpe-text", "ascii.txt", "Hello, world! It's 12345 o'clock - a, b::c. ab")
put("bpe-text", "unicode.txt", "Naïve CAFÉ cafe\u0301 — 中文字 🙂 \u1100\u1161\u11a8 a\u0301\u0316 \u0ccb")
put("bpe-text", "added.txt", "<|begin_of_text|>a   <mask>b [WORD] x[WORD]y nice <sep>  <|im_start|>user\n")
put("bpe-text", "bytes.txt", bytes(range(256)) + "\u017f'S'LL\r\n\t\u3000".encode())

# text: what records carry.
put("text", "ascii.txt", "Hello, world! unaffable things")
put("text", "unicode.txt", "Naïve CAFÉ — 中文字 🙂 \u0301e \u200b\ufeff")
put("text", "pair.txt", b"first sentence\x00second one, longer than the first")
put("text", "controls.txt", b"\x01\x02\t\r\n\x7f [CLS] [SEP][MASK]" + "ß".encode() * 50)

# chattemplate: the fixture's real templates, and one-rule snippets of each Jinja corner.
templates = os.path.join(ROOT, "fixtures", "text", "chat-templates")
for name in sorted(os.listdir(templates)):
    put("chattemplate", name, fixture(os.path.join("fixtures", "text", "chat-templates", name)))
put("chattemplate", "whitespace.jinja", "a\n  {% if true %}\n  b {{- ' c ' -}} d\n  {%- endif %}\n{# note #}\n{% raw %}{{ x }}{% endraw %}\n")
put("chattemplate", "scopes.jinja", "{% set ns = namespace(n=0) %}{% for m in messages if m.role != 'system' %}"
    "{% set ns.n = ns.n + loop.index %}{{ loop.index0 }}{{ m['content'][::-1] | trim | tojson }}{% else %}none"
    "{% endfor %}{{ ns.n }}{% macro box(x, y=2) %}[{{ x }}{{ caller() }}]{% endmacro %}"
    "{% call box(1) %}in{% endcall %}{{ raise_exception('no') if ns.n > 99 }}")
put("chattemplate", "values.jinja", "{{ [1, 'a', none, true, 1.0, (1,), {'k': 2.5e20}] }} {{ 7 // -2 }} {{ 2 ** 10 }} "
    "{{ 'x' ~ tools | length }} {{ messages | selectattr('role', 'eq', 'user') | map(attribute='content') | join('|') }} "
    "{{ strftime_now('%d %b %Y') }} {{ 'a,b'.split(',') }} {{ range(3) | list }} {{ '%s-%d' | format('a', 3) }}")
put("chattemplate", "messages.bin", b"{% for m in messages %}{{ m.content }}{% endfor %}\x00"
    b'[{"role":"user","content":[{"type":"text","text":"hi"}]},{"role":"user","content":null},{"x":1}]')
put("chattemplate", "refused.jinja", "{% include 'x' %}{{ 'x' * 10**12 }}{% for x in y recursive %}")
put("chattemplate", "limits.jinja", "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}")
