#!/usr/bin/env python3
"""Writes a Hugging Face BitNet checkpoint with random weights, in the packed layout of
microsoft/bitnet-b1.58-2B-4T (U8 [out/4, in] codes + BF16 weight_scale [1], BF16 embedding
and norms, autobitlinear), for timing bitnet-st2gguf on a full-size model without
downloading one. numpy only; the safetensors file is written by hand (8-byte little-endian
header length, JSON header, raw data) in chunks, so memory stays small.

Default shape is 2B4T's: hidden 2560, 30 layers, intermediate 6912, 20 heads, 5 kv heads,
vocab 128256, tied embeddings (~1.2 GB on disk).

    python3 scripts/st2gguf_synthetic_checkpoint.py /tmp/bitnet-2b4t-synth \
        [--tokenizer fixtures/llama3-tokenizer/tokenizer.json] [--layers 30] ...

Not run by CI (it is a benchmark input, not a test).
"""

import argparse
import json
import os
import shutil
import struct

import numpy as np


def tensor_list(a):
    h, i, layers = a.hidden, a.intermediate, a.layers
    hd = h // a.heads
    q, kv = a.heads * hd, a.kv_heads * hd
    out = [("model.embed_tokens.weight", "BF16", [a.vocab, h])]
    for l in range(layers):
        p = f"model.layers.{l}."
        out.append((p + "input_layernorm.weight", "BF16", [h]))
        out.append((p + "post_attention_layernorm.weight", "BF16", [h]))
        out.append((p + "self_attn.attn_sub_norm.weight", "BF16", [q]))
        out.append((p + "mlp.ffn_sub_norm.weight", "BF16", [i]))
        for name, rows, cols in [
            ("self_attn.q_proj", q, h),
            ("self_attn.k_proj", kv, h),
            ("self_attn.v_proj", kv, h),
            ("self_attn.o_proj", h, q),
            ("mlp.gate_proj", i, h),
            ("mlp.up_proj", i, h),
            ("mlp.down_proj", h, i),
        ]:
            out.append((p + name + ".weight", "U8", [rows // 4, cols]))
            out.append((p + name + ".weight_scale", "BF16", [1]))
    out.append(("model.norm.weight", "BF16", [h]))
    return out


def nbytes(dtype, shape):
    return int(np.prod(shape)) * (1 if dtype == "U8" else 2)


def bf16_bytes(x):
    """float32 array -> bf16 bytes (round to nearest even)."""
    u = x.astype(np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2").tobytes()


def write_data(f, rng, name, dtype, shape):
    if dtype == "U8":
        # Four 2-bit codes per byte, each 0/1/2 (value = code - 1); code 3 never occurs.
        rows, cols = shape
        codes = rng.integers(0, 3, size=(4, rows, cols), dtype=np.uint8)
        packed = codes[0] | (codes[1] << 2) | (codes[2] << 4) | (codes[3] << 6)
        f.write(packed.tobytes())
    elif name.endswith("weight_scale"):
        f.write(bf16_bytes(np.array([rng.uniform(0.5, 3.0)], dtype=np.float32)))
    elif "norm" in name:
        f.write(bf16_bytes(rng.uniform(0.5, 1.5, size=shape).astype(np.float32)))
    else:
        rows, cols = shape
        step = 4096
        for r in range(0, rows, step):
            n = min(step, rows - r)
            f.write(bf16_bytes(rng.standard_normal((n, cols), dtype=np.float32) * 0.02))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--hidden", type=int, default=2560)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--intermediate", type=int, default=6912)
    ap.add_argument("--heads", type=int, default=20)
    ap.add_argument("--kv-heads", type=int, default=5)
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer", help="tokenizer.json to copy into the checkpoint")
    a = ap.parse_args()

    os.makedirs(a.out_dir, exist_ok=True)
    config = {
        "architectures": ["BitNetForCausalLM"],
        "model_type": "bitnet",
        "hidden_size": a.hidden,
        "intermediate_size": a.intermediate,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads,
        "vocab_size": a.vocab,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "hidden_act": "relu2",
        "tie_word_embeddings": True,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "torch_dtype": "bfloat16",
        "quantization_config": {
            "quant_method": "bitnet",
            "linear_class": "autobitlinear",
            "quantization_mode": "offline",
        },
    }
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if a.tokenizer:
        shutil.copy(a.tokenizer, os.path.join(a.out_dir, "tokenizer.json"))

    tensors = tensor_list(a)
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, dtype, shape in tensors:
        n = nbytes(dtype, shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    rng = np.random.default_rng(a.seed)
    path = os.path.join(a.out_dir, "model.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for name, dtype, shape in tensors:
            write_data(f, rng, name, dtype, shape)
    print(f"wrote {path}: {len(tensors)} tensors, {off / 2**30:.2f} GiB of data")


if __name__ == "__main__":
    main()
