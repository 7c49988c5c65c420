#!/usr/bin/env python3
"""Writes the GGUF fixtures under fixtures/models/tiny-gguf/ and the values they must give.

    /tmp/quern-llm-anchors/venv/bin/python scripts/make_gguf_fixture.py

Needs `gguf` (0.19.0), numpy and llama-cpp-py-sync (the anchors venv made by
/work/shared/bench/setup-llm-anchors.sh has all three); tests never run it.

  tiny-llama.gguf  a Llama-architecture model as llama.cpp's converter writes one: llama.*
                   hyperparameters (hidden 256 so K-quant rows fit, 4 heads, 2 key/value
                   heads, 1 block), a 64-token byte-level BPE vocabulary with merges, a chat
                   template, and random weights in a mix of block formats.
  types.gguf       not a model: one metadata key of every GGUF value type (arrays, nested
                   arrays), general.alignment 64, and one small tensor of every block format
                   Quern reads: a row of real blocks and a row of random bytes (any bytes are
                   a valid block, NaN and infinite scales included).
  NAME.expected.json  for each tensor of NAME.gguf: ggml type, Quern's row-major shape, the
                   SHA-256 of its fp32 values (little-endian) as `gguf.quants.dequantize`
                   gives them, and for tensors of at most 1024 values the values themselves
                   as 32-bit patterns.

The 32-weight formats and BF16 are quantised with gguf.quants.quantize; the K-quants come
from llama.cpp's own quantiser (llama_model_quantize, with `pure` so every tensor whose rows
allow it takes the type), run on an fp32 copy of the tiny model.
"""
import hashlib, json, os, sys, tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "fixtures", "models", "tiny-gguf")
rng = np.random.default_rng(16)

HIDDEN, HEADS, KV_HEADS, FFN, VOCAB = 256, 4, 2, 64, 64
HEAD_DIM = HIDDEN // HEADS

# name: (numpy shape = Quern's row-major shape, ggml type in tiny-llama.gguf)
LAYOUT = {
    "token_embd.weight": ((VOCAB, HIDDEN), T.Q8_0),
    "output_norm.weight": ((HIDDEN,), T.F32),
    "output.weight": ((VOCAB, HIDDEN), T.Q6_K),
    "blk.0.attn_norm.weight": ((HIDDEN,), T.F32),
    "blk.0.attn_q.weight": ((HEADS * HEAD_DIM, HIDDEN), T.Q4_K),
    "blk.0.attn_k.weight": ((KV_HEADS * HEAD_DIM, HIDDEN), T.Q5_K),
    "blk.0.attn_v.weight": ((KV_HEADS * HEAD_DIM, HIDDEN), T.Q3_K),
    "blk.0.attn_output.weight": ((HIDDEN, HEADS * HEAD_DIM), T.Q2_K),
    "blk.0.ffn_norm.weight": ((HIDDEN,), T.F32),
    "blk.0.ffn_gate.weight": ((FFN, HIDDEN), T.Q4_0),
    "blk.0.ffn_up.weight": ((FFN, HIDDEN), T.Q5_1),
    "blk.0.ffn_down.weight": ((HIDDEN, FFN), T.Q5_0),
}
K_FTYPES = {T.Q2_K: "Q2_K", T.Q3_K: "Q3_K_S", T.Q4_K: "Q4_K_S", T.Q5_K: "Q5_K_S", T.Q6_K: "Q6_K"}


def weights():
    out = {}
    for name, (shape, _) in LAYOUT.items():
        if len(shape) == 1:
            out[name] = (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:  # heavy-tailed, like trained weights: some blocks have an outlier
            out[name] = (0.02 * rng.standard_t(4, shape)).astype(np.float32)
    return out


def vocabulary():
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    chars = list("abcdefghijklmnopqrstuvwxyz") + ["Ġ", "Ċ", ".", ",", "!", "?", "'", "-"]
    merges = ["Ġ t", "h e", "Ġt he", "i n", "e r", "a n", "Ġ a", "o n", "r e", "Ġ s", "e d", "i s", "Ġ w",
              "o u", "a t", "Ġ b", "e n", "Ġ o", "Ġ i", "i t", "Ġt o", "e s", "o r", "Ġ c", "in g", "Ġ h",
              "l l"]
    tokens = special + chars + [m.replace(" ", "") for m in merges]
    assert len(tokens) == VOCAB and len(set(tokens)) == VOCAB, len(tokens)
    types = [3] * len(special) + [1] * (VOCAB - len(special))  # 3: control, 1: normal
    return tokens, types, merges


def write_llama(path, tensors, types):
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("Quern Tiny Llama")
    w.add_context_length(128)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(1)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_vocab_size(VOCAB)
    w.add_file_type(0)
    tokens, token_types, merges = vocabulary()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")  # a pre-tokenizer Quern knows, so the file loads as a whole model
    w.add_token_list(tokens)
    w.add_token_types(token_types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    for name, (shape, _) in LAYOUT.items():
        data, qtype = tensors[name], types[name]
        w.add_tensor(name, data, raw_dtype=None if qtype in (T.F32, T.F16) else qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_quantize(src, dst, ftype):
    from llama_cpp_py_sync._cffi_bindings import get_ffi, get_lib
    lib, ffi = get_lib(), get_ffi()
    if not hasattr(llama_quantize, "log"):  # errors only: it logs every tensor
        @ffi.callback("void(enum ggml_log_level, const char *, void *)")
        def log(level, text, _):
            if level >= 4 and level != 5:
                sys.stderr.write(ffi.string(text).decode(errors="replace"))
        lib.llama_log_set(log, ffi.NULL)
        llama_quantize.log = log  # the callback must outlive every call
    qp = ffi.new("llama_model_quantize_params *", lib.llama_model_quantize_default_params())
    qp.ftype = getattr(lib, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    qp.pure = True
    qp.nthread = 1
    rc = lib.llama_model_quantize(src.encode(), dst.encode(), qp)
    if rc != 0:
        sys.exit(f"llama_model_quantize {ftype} returned {rc}")


def blocks(values, qtype):
    """values (fp32) stored as qtype: bytes (uint8, byte shape) or a float array."""
    if qtype == T.F32:
        return values
    if qtype == T.F16:
        return values.astype(np.float16)
    return quantize(values, qtype)


def expected(path):
    out = {}
    for t in gguf.GGUFReader(path).tensors:
        with np.errstate(invalid="ignore", over="ignore"):  # random blocks: NaN and infinite scales
            values = np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        bits = values.view(np.uint32).ravel()
        shape = [int(d) for d in reversed(t.shape.tolist())]
        assert values.shape == tuple(shape), (t.name, values.shape, shape)
        e = {"type": t.tensor_type.name, "shape": shape, "sha256": hashlib.sha256(values.astype("<f4").tobytes()).hexdigest()}
        if bits.size <= 1024:
            e["bits"] = [int(b) for b in bits]
        out[t.name] = e
    with open(path.removesuffix(".gguf") + ".expected.json", "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    fp32 = weights()
    with tempfile.TemporaryDirectory() as tmp:
        # K-quant blocks: llama.cpp quantises the fp32 model once per K type.
        src = os.path.join(tmp, "tiny-f32.gguf")
        write_llama(src, fp32, {n: T.F32 for n in LAYOUT})
        kq = {}
        for qtype, ftype in K_FTYPES.items():
            dst = os.path.join(tmp, f"tiny-{ftype}.gguf")
            llama_quantize(src, dst, ftype)
            kq[qtype] = {t.name: (t.tensor_type, np.array(t.data)) for t in gguf.GGUFReader(dst).tensors}

        stored, types = {}, {}
        for name, (shape, qtype) in LAYOUT.items():
            if qtype in K_FTYPES:
                got_type, data = kq[qtype][name]
                assert got_type == qtype, (name, got_type.name, qtype.name)
                stored[name] = data
            else:
                stored[name] = blocks(fp32[name], qtype)
            types[name] = qtype
        llama = os.path.join(OUT, "tiny-llama.gguf")
        write_llama(llama, stored, types)
        expected(llama)

        write_types(os.path.join(OUT, "types.gguf"), kq)
        expected(os.path.join(OUT, "types.gguf"))
    for f in sorted(os.listdir(OUT)):
        print(f"{f}: {os.path.getsize(os.path.join(OUT, f))} bytes")


def write_types(path, kq):
    w = gguf.GGUFWriter(path, arch="quern-test")  # general.architecture: not a model family
    w.add_custom_alignment(64)
    V = gguf.GGUFValueType
    w.add_uint8("test.uint8", 200)
    w.add_int8("test.int8", -100)
    w.add_uint16("test.uint16", 60000)
    w.add_int16("test.int16", -30000)
    w.add_uint32("test.uint32", 4000000000)
    w.add_int32("test.int32", -2000000000)
    w.add_uint64("test.uint64", 18000000000000000000)
    w.add_int64("test.int64", -9000000000000000000)
    w.add_float32("test.float32", 0.1)
    w.add_float64("test.float64", -2.5e300)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "naïve café — 中文 🙂")
    w.add_key_value("test.array.uint8", [0, 1, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("test.array.int16", [-1, 2, -32768], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("test.array.uint64", [1, 2**64 - 1], V.ARRAY, sub_type=V.UINT64)
    w.add_array("test.array.int32", [1, -2, 3])
    w.add_array("test.array.float32", [0.5, -1.25, 3e38])
    w.add_key_value("test.array.float64", [0.1, -0.2], V.ARRAY, sub_type=V.FLOAT64)
    w.add_array("test.array.bool", [True, False, True])
    w.add_array("test.array.string", ["a", "", "ü"])
    w.add_array("test.array.nested", [[1, 2], [3], [[4], [5, 6]]])
    w.add_array("test.array.nested_strings", [["x", "y"], ["z"]])

    def random_bytes_row(qtype, weights):
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        return rng.integers(0, 256, (1, weights // block_size * type_size), dtype=np.uint8)

    # F32 and F16: ordinary values and every special: ±0, subnormals, ±infinity, quiet and
    # signalling NaNs with payloads, the extremes.
    f32_special = np.array([0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x7F800000, 0xFF800000,
                            0x7FC00000, 0x7FC12345, 0x7F812345, 0xFFBFFFFF, 0x7F7FFFFF, 0x00800000,
                            0x3F800000, 0xBF800000, 0x3EAAAAAB, 0x4B000001], dtype=np.uint32).view(np.float32)
    w.add_tensor("f32", np.concatenate([f32_special, rng.standard_normal(48).astype(np.float32)]).reshape(4, 16))
    f16_special = np.array([0x0000, 0x8000, 0x0001, 0x03FF, 0x8200, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
                            0x7E00, 0x7E01, 0x7C01, 0xFDFF, 0x3C00, 0x3555], dtype=np.uint16).view(np.float16)
    w.add_tensor("f16", np.concatenate([f16_special, rng.standard_normal(48).astype(np.float16)]).reshape(4, 16))
    real = (0.02 * rng.standard_t(4, (1, 256))).astype(np.float32)
    for qtype in (T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
        rows = np.concatenate([quantize(real, qtype).view(np.uint8), random_bytes_row(qtype, 256)])
        w.add_tensor(qtype.name.lower(), rows, raw_dtype=qtype)
    for qtype in K_FTYPES:
        _, data = kq[qtype]["blk.0.attn_q.weight"]
        rows = np.concatenate([data[:1], random_bytes_row(qtype, 256)])
        w.add_tensor(qtype.name.lower(), rows, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


main()
