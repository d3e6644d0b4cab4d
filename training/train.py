#!/usr/bin/env python3
"""Quantisation-aware training of a small BitNet b1.58 model (W1.58A8) on the rust-docs corpus.

Uses transformers' BitNetForCausalLM with its AutoBitLinear layers in online mode
(`replace_with_bitnet_linear`, linear_class autobitlinear, quantization_mode online): every
forward ternarises the latent weights (absmean) and int8-quantises activations (absmax per
token), with the straight-through estimator in backward. The tied lm_head stays a plain linear.

Usage: train.py --corpus DIR --tokenizer DIR --out DIR [--steps N] [--seed S] ...
Writes OUT/master.pt (latent f32 weights + config), OUT/loss.csv.
"""
import argparse, csv, json, math, os, random, time
import numpy as np
import torch
import torch._dynamo
torch._dynamo.config.disable = True  # the integration's @torch.compile is a no-op: same math, eager
from tokenizers import Tokenizer
from transformers import BitNetConfig, BitNetForCausalLM
from transformers.integrations.bitnet import replace_with_bitnet_linear
from transformers.utils.quantization_config import BitNetQuantConfig

ap = argparse.ArgumentParser()
ap.add_argument("--corpus", required=True); ap.add_argument("--tokenizer", required=True); ap.add_argument("--out", required=True)
ap.add_argument("--steps", type=int, default=1000); ap.add_argument("--seed", type=int, default=1234)
ap.add_argument("--hidden", type=int, default=256); ap.add_argument("--layers", type=int, default=6)
ap.add_argument("--heads", type=int, default=4); ap.add_argument("--kv-heads", type=int, default=2)
ap.add_argument("--intermediate", type=int, default=688); ap.add_argument("--ctx", type=int, default=256)
ap.add_argument("--batch", type=int, default=32); ap.add_argument("--lr", type=float, default=2e-3)
ap.add_argument("--warmup", type=int, default=50); ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--init-from", default=None);
ap.add_argument("--log-every", type=int, default=10); ap.add_argument("--time-limit", type=float, default=0)
a = ap.parse_args()

random.seed(a.seed); np.random.seed(a.seed); torch.manual_seed(a.seed)
torch.set_num_threads(a.threads)
os.makedirs(a.out, exist_ok=True)
tok = Tokenizer.from_file(os.path.join(a.tokenizer, "tokenizer.json"))
BOS, EOS = tok.token_to_id("<s>"), tok.token_to_id("</s>")

def encode_docs(path):
    docs = open(path, encoding="utf-8").read().split("\n\n\n") if False else None
    text = open(path, encoding="utf-8").read()
    ids = tok.encode(text, add_special_tokens=False).ids
    return np.array(ids, dtype=np.int64)

cache = os.path.join(a.out, "train_ids.npy")
if os.path.exists(cache):
    train = np.load(cache)
else:
    train = encode_docs(os.path.join(a.corpus, "train.txt")); np.save(cache, train)
print(f"train tokens: {len(train)}", flush=True)

cfg = BitNetConfig(vocab_size=tok.get_vocab_size(), hidden_size=a.hidden, intermediate_size=a.intermediate,
                   num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                   hidden_act="relu2", max_position_embeddings=a.ctx, rms_norm_eps=1e-5, rope_theta=500000.0,
                   tie_word_embeddings=True, bos_token_id=BOS, eos_token_id=EOS, initializer_range=0.02,
                   attention_bias=False, attention_dropout=0.0, use_cache=False)
model = BitNetForCausalLM(cfg)
qc = BitNetQuantConfig(linear_class="autobitlinear", quantization_mode="online")
replace_with_bitnet_linear(model, modules_to_not_convert=["lm_head"], quantization_config=qc)
model.to_empty(device="cpu")
torch.manual_seed(a.seed)
model.apply(model._init_weights) if hasattr(model, "_init_weights") else None
for n, m in model.named_modules():  # replaced linears were built on meta: (re)initialise
    if m.__class__.__name__ == "AutoBitLinear":
        torch.nn.init.normal_(m.weight, std=0.02)
    if "RMSNorm" in m.__class__.__name__:
        torch.nn.init.ones_(m.weight)
torch.nn.init.normal_(model.model.embed_tokens.weight, std=0.02)
# to_empty() leaves the non-persistent RoPE buffers (inv_freq) uninitialised: rebuild them.
model.model.rotary_emb = type(model.model.rotary_emb)(config=cfg)
if a.init_from:
    model.load_state_dict(torch.load(a.init_from, map_location="cpu", weights_only=False)["state_dict"])
model.tie_weights()
assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
n_params = sum(p.numel() for p in model.parameters())
print(model.model.layers[0], flush=True)
print(f"params: {n_params}", flush=True)

decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
nodecay = [p for n, p in model.named_parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": nodecay, "weight_decay": 0.0}],
                        lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
def lr_at(s):
    if s < a.warmup: return a.lr * (s + 1) / a.warmup
    p = (s - a.warmup) / max(1, a.steps - a.warmup)
    return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

rng = np.random.default_rng(a.seed)
L = a.ctx - 1
log = open(os.path.join(a.out, "loss.csv"), "w", newline=""); w = csv.writer(log); w.writerow(["step", "tokens", "lr", "loss", "elapsed_s"])
model.train(); t0 = time.time(); acc = 0.0; nacc = 0
for step in range(a.steps):
    offs = rng.integers(0, len(train) - L - 1, size=a.batch)
    x = np.stack([np.concatenate([[BOS], train[o:o + L]]) for o in offs])
    x = torch.from_numpy(x)
    for g in opt.param_groups: g["lr"] = lr_at(step)
    out = model(input_ids=x, labels=x)
    opt.zero_grad(set_to_none=True)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    acc += out.loss.item(); nacc += 1
    if (step + 1) % a.log_every == 0 or step == 0:
        el = time.time() - t0
        w.writerow([step + 1, (step + 1) * a.batch * a.ctx, f"{lr_at(step):.6g}", f"{acc / nacc:.5f}", f"{el:.1f}"]); log.flush()
        print(f"step {step+1} loss {acc/nacc:.4f} lr {lr_at(step):.2e} {el:.0f}s {(step+1)*a.batch*a.ctx/el:.0f} tok/s", flush=True)
        acc = 0.0; nacc = 0
    if a.time_limit and time.time() - t0 > a.time_limit:
        print(f"time limit reached at step {step+1}", flush=True); break
meta = {"config": cfg.to_dict(), "steps_done": step + 1, "steps_planned": a.steps, "seed": a.seed, "batch": a.batch,
        "ctx": a.ctx, "lr": a.lr, "warmup": a.warmup, "train_seconds": time.time() - t0, "train_tokens_corpus": int(len(train)),
        "params": n_params, "torch": torch.__version__}
import transformers; meta["transformers"] = transformers.__version__
torch.save({"state_dict": model.state_dict(), "meta": meta}, os.path.join(a.out, "master.pt"))
json.dump(meta, open(os.path.join(a.out, "train_meta.json"), "w"), indent=2, default=str)
print("saved", flush=True)
