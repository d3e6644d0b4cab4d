#!/usr/bin/env python3
"""Checks bitnet-st2gguf output with the Python `gguf` package (llama.cpp's reader).

usage: st2gguf_interop.py CHECKPOINT_DIR OUT_DIR

OUT_DIR holds tiny-{tq2_0,tq1_0,f16,f32}.gguf converted from CHECKPOINT_DIR (the packed
tiny-bitnet fixture). For each file: `gguf.GGUFReader` opens it, the model keys have the
config's values, and every tensor dequantised by `gguf.quants.dequantize` equals the
checkpoint's weight computed here independently with numpy: the U8 codes unpacked (bits
2i..2i+1 of byte [r, c] = code of row i*(out/4) + r; value = code - 1) times the bf16
weight_scale (autobitlinear multiplies), rounded as the stored type rounds it.
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

LINEARS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
NORMS = {
    "attn_norm": "input_layernorm",
    "attn_sub_norm": "self_attn.attn_sub_norm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_sub_norm": "mlp.ffn_sub_norm",
}
EXPECTED = {
    "tq2_0": (T.TQ2_0, T.F16, 37),
    "tq1_0": (T.TQ1_0, T.F16, 36),
    "f16": (T.F16, T.F16, 1),
    "f32": (T.F32, T.F32, 0),
}


def read_safetensors(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = data[a:b]
        if info["dtype"] == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif info["dtype"] == "U8":
            arr = np.frombuffer(buf, dtype=np.uint8)
        else:
            raise SystemExit(f"{name}: unexpected dtype {info['dtype']}")
        out[name] = arr.reshape(info["shape"])
    return out


def unpack(packed, scale):
    """U8 [out/4, in] -> float32 [out, in] = (code - 1) * scale."""
    rows4, cols = packed.shape
    codes = np.stack([(packed >> (2 * i)) & 3 for i in range(4)])  # [4, out/4, in]
    assert codes.max() <= 2, "code 3 in the checkpoint"
    values = codes.reshape(4 * rows4, cols).astype(np.int8) - 1
    return values.astype(np.float32), np.float32(scale)


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        raise SystemExit(f"missing key {key}")
    part = f.parts[f.data[0]]
    if f.types and f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(part).decode()
    return part[0].item()


def expected_tensor(name, st, linear_type, embed_type):
    if name == "token_embd.weight":
        w = st["model.embed_tokens.weight"]
        return w.astype(np.float16).astype(np.float32) if embed_type == T.F16 else w
    if name == "output_norm.weight":
        return st["model.norm.weight"]
    _, layer, kind, _ = name.split(".")
    prefix = f"model.layers.{layer}."
    if kind in NORMS:
        return st[prefix + NORMS[kind] + ".weight"]
    hf = prefix + LINEARS[kind]
    values, scale = unpack(st[hf + ".weight"], st[hf + ".weight_scale"][0])
    if linear_type in (T.TQ2_0, T.TQ1_0):
        # One f16 scale per 256-weight block.
        return values * np.float32(np.float16(scale))
    if linear_type == T.F16:
        return (values * scale).astype(np.float16).astype(np.float32)
    return values * scale


def main():
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    config = json.loads((src / "config.json").read_text())
    st = read_safetensors(src / "model.safetensors")
    checked = 0
    for outtype, (linear_type, embed_type, file_type) in EXPECTED.items():
        path = out / f"tiny-{outtype}.gguf"
        reader = gguf.GGUFReader(path)
        arch = field(reader, "general.architecture")
        keys = {
            "general.architecture": "bitnet-b1.58",
            "general.file_type": file_type,
            "general.quantization_version": 2,
            f"{arch}.block_count": config["num_hidden_layers"],
            f"{arch}.embedding_length": config["hidden_size"],
            f"{arch}.feed_forward_length": config["intermediate_size"],
            f"{arch}.attention.head_count": config["num_attention_heads"],
            f"{arch}.attention.head_count_kv": config["num_key_value_heads"],
            f"{arch}.context_length": config["max_position_embeddings"],
            f"{arch}.vocab_size": config["vocab_size"],
            f"{arch}.rope.freq_base": config["rope_theta"],
            f"{arch}.hidden_activation": "relu2",
        }
        for k, v in keys.items():
            got = field(reader, k)
            ok = np.isclose(got, v, rtol=1e-6) if isinstance(v, float) else got == v
            if not ok:
                raise SystemExit(f"{path.name}: {k} = {got!r}, expected {v!r}")
        n_expected = 2 + 11 * config["num_hidden_layers"]
        if len(reader.tensors) != n_expected:
            raise SystemExit(f"{path.name}: {len(reader.tensors)} tensors, expected {n_expected}")
        for t in reader.tensors:
            want = expected_tensor(t.name, st, linear_type, embed_type)
            is_linear = t.name.split(".")[-2] in LINEARS
            want_type = linear_type if is_linear else (embed_type if t.name == "token_embd.weight" else T.F32)
            if t.tensor_type != want_type:
                raise SystemExit(f"{path.name}: {t.name} is {t.tensor_type.name}, expected {want_type.name}")
            got = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(want.shape)
            if list(reversed(want.shape)) != [int(x) for x in t.shape]:
                raise SystemExit(f"{path.name}: {t.name} ne {list(t.shape)}, expected {list(reversed(want.shape))}")
            if not np.array_equal(got, want):
                d = np.abs(got - want)
                i = np.unravel_index(np.argmax(d), d.shape)
                raise SystemExit(
                    f"{path.name}: {t.name} differs at {i}: gguf {got[i]} vs checkpoint {want[i]}"
                )
            checked += 1
        print(f"{path.name}: {len(reader.tensors)} tensors equal to the checkpoint ({linear_type.name})")
    print(f"interop ok: {checked} tensors checked with gguf {getattr(gguf, '__version__', '')}".rstrip())


if __name__ == "__main__":
    main()
