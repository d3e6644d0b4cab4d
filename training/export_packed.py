#!/usr/bin/env python3
"""Export the QAT master checkpoint to the Hugging Face packed layout of bitnet-b1.58-2B-4T.

Usage: export_packed.py --master RUN/master.pt --tokenizer TOKDIR --out MODELDIR
Every AutoBitLinear weight: s = mean|W| (clamp 1e-5), values = clamp(round(W/s), -1, 1),
code = value + 1, stored U8 [out/4, in] where bits 2i..2i+1 of byte [r, c] hold the code of
row i*(out/4) + r; weight_scale = bf16(s) [1] (autobitlinear, offline: W = values * scale).
Embeddings and norms in bf16; tied head (no lm_head.weight).
"""
import argparse, json, os, shutil
import torch
from safetensors.torch import save_file

ap = argparse.ArgumentParser()
ap.add_argument("--master", required=True); ap.add_argument("--tokenizer", required=True); ap.add_argument("--out", required=True)
a = ap.parse_args()
ck = torch.load(a.master, map_location="cpu", weights_only=False)
sd, meta = ck["state_dict"], ck["meta"]
LIN = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
out = {}
for k, v in sd.items():
    if k == "lm_head.weight":
        continue
    if any(f".{n}." in k for n in LIN) and k.endswith(".weight"):
        w = v.float()
        s = w.abs().mean().clamp(min=1e-5)
        vals = (w / s).round().clamp(-1, 1).to(torch.int64)
        codes = (vals + 1).to(torch.uint8)
        o, i = codes.shape
        assert o % 4 == 0, k
        q = o // 4
        packed = torch.zeros((q, i), dtype=torch.uint8)
        for j in range(4):
            packed |= codes[j * q:(j + 1) * q] << (2 * j)
        out[k] = packed.contiguous()
        out[k[:-len("weight")] + "weight_scale"] = s.reshape(1).to(torch.bfloat16)
    else:
        out[k] = v.to(torch.bfloat16).contiguous()
os.makedirs(a.out, exist_ok=True)
save_file(out, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
c = meta["config"]
keys = ["attention_bias", "attention_dropout", "bos_token_id", "eos_token_id", "hidden_act", "hidden_size",
        "initializer_range", "intermediate_size", "max_position_embeddings", "num_attention_heads",
        "num_hidden_layers", "num_key_value_heads", "rms_norm_eps", "tie_word_embeddings", "vocab_size"]
cfg = {"architectures": ["BitNetForCausalLM"], "model_type": "bitnet"}
cfg.update({k: c[k] for k in keys})
rp = c.get("rope_parameters") or {}
cfg["rope_theta"] = float(c.get("rope_theta") or rp.get("rope_theta"))
cfg["quantization_config"] = {"linear_class": "autobitlinear", "quant_method": "bitnet", "quantization_mode": "offline"}
cfg["torch_dtype"] = "bfloat16"; cfg["use_cache"] = True
cfg = dict(sorted(cfg.items()))
json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(a.tokenizer, f), os.path.join(a.out, f))
json.dump({"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"]}, open(os.path.join(a.out, "generation_config.json"), "w"), indent=2)
print("exported", len(out), "tensors to", a.out)
