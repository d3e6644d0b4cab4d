#!/usr/bin/env python3
"""Check the packed export and compute the reference numbers of the model card.

Usage: evaluate.py --model MODELDIR --master RUN/master.pt --heldout HELDOUT.txt --loss-csv RUN/loss.csv
1. Reloads MODELDIR (packed, offline AutoBitLinear) with transformers in float32 and compares
   its logits with the online-quantised QAT model (master latent weights) on held-out windows.
2. Held-out perplexity of the packed model, W1.58A8 (activation quantisation on), with the
   definition of `bitnet-cli perplexity`: text tokenized without BOS, non-overlapping windows of
   BOS + (ctx-1) tokens (last one shorter), every text token scored, log-softmax in f64.
3. Greedy continuations (32 new tokens, full forward each step, no sampling) for fixed prompts,
   checked against generate(); writes reference_greedy.json, reference_ppl.json, samples.json,
   and the loss plot loss.png.
"""
import argparse, csv, json, math, os
import numpy as np
import torch
import torch._dynamo
torch._dynamo.config.disable = True
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, BitNetConfig, BitNetForCausalLM
from transformers.integrations.bitnet import replace_with_bitnet_linear
from transformers.utils.quantization_config import BitNetQuantConfig

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True); ap.add_argument("--master", required=True)
ap.add_argument("--heldout", required=True); ap.add_argument("--loss-csv", required=True)
ap.add_argument("--ctx", type=int, default=256); ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
BOS = tok.token_to_id("<s>")
packed = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
# the offline AutoBitLinear keeps the unpacked values and weight_scale in the checkpoint's bf16;
# casting to f32 is exact (values are -1/0/1, the scale is a bf16 number) and computes in f32.
torch.nn.Module.float(packed)
for n, t in list(packed.named_parameters()) + list(packed.named_buffers()):
    assert t.dtype == torch.float32, (n, t.dtype)
print(type(packed.model.layers[0].mlp.down_proj), packed.model.layers[0].mlp.down_proj.online_quant)

ck = torch.load(a.master, map_location="cpu", weights_only=False)
cfg = BitNetConfig(**{k: v for k, v in ck["meta"]["config"].items() if k not in ("quantization_config",)})
online = BitNetForCausalLM(cfg)
replace_with_bitnet_linear(online, modules_to_not_convert=["lm_head"],
                           quantization_config=BitNetQuantConfig(linear_class="autobitlinear", quantization_mode="online"))
online.to_empty(device="cpu"); online.model.rotary_emb = type(online.model.rotary_emb)(config=cfg); online.load_state_dict(ck["state_dict"]); online.tie_weights(); online.eval()

ids = tok.encode(open(a.heldout, encoding="utf-8").read(), add_special_tokens=False).ids
per = a.ctx - 1
windows = [[BOS] + ids[i:i + per] for i in range(0, len(ids), per)]
windows = [w for w in windows if len(w) >= 2]

with torch.no_grad():
    x = torch.tensor([windows[0]])
    lp, lo = packed(x).logits[0], online(x).logits[0]
    d = (lp - lo).abs().max().item()
    top1 = (lp.argmax(-1) == lo.argmax(-1)).float().mean().item()
    print(f"packed vs online-QAT logits: max|d| {d:.4g}, top-1 agreement {top1:.4f}, logit range {lo.abs().max().item():.2f}")
    nll, n, nll_on = 0.0, 0, 0.0
    for w in windows:
        x = torch.tensor([w])
        lg = packed(x).logits[0].double()
        lg_on = online(x).logits[0].double()
        t = torch.tensor(w[1:])
        nll -= torch.log_softmax(lg[:-1], -1).gather(1, t[:, None]).sum().item()
        nll_on -= torch.log_softmax(lg_on[:-1], -1).gather(1, t[:, None]).sum().item()
        n += len(w) - 1
ppl, ppl_on = math.exp(nll / n), math.exp(nll_on / n)
print(f"held-out ppl (packed, W1.58A8): {ppl:.4f} over {n} tokens in {len(windows)} windows; online-QAT model: {ppl_on:.4f}")
json.dump({"perplexity": ppl, "scored_tokens": n, "windows": len(windows), "ctx": a.ctx, "heldout_file": os.path.basename(a.heldout),
           "heldout_text_tokens": len(ids), "mean_nll": nll / n, "perplexity_online_qat_f32_scale": ppl_on,
           "packed_vs_online_max_abs_logit_diff": d, "packed_vs_online_top1": top1,
           "definition": "text tokenized without BOS; non-overlapping windows of BOS + (ctx-1) tokens, last shorter; every text token scored; log-softmax in f64; activation quantisation on"},
          open(os.path.join(a.model, "reference_ppl.json"), "w"), indent=2)

def greedy(prompt, n_new):
    p = [BOS] + tok.encode(prompt, add_special_tokens=False).ids
    seq, margins = list(p), []
    with torch.no_grad():
        for _ in range(n_new):
            lg = packed(torch.tensor([seq])).logits[0, -1]
            top = torch.topk(lg, 2)
            margins.append(round((top.values[0] - top.values[1]).item(), 4))
            seq.append(int(top.indices[0]))
        gen = packed.generate(torch.tensor([p]), max_new_tokens=n_new, do_sample=False, eos_token_id=None, pad_token_id=0)[0].tolist()
    return p, seq[len(p):], margins, gen[len(p):]

refs = []
for prompt in ["Ownership in Rust", "A trait is", "fn main() {", "The borrow checker"]:
    p, new, m, gen = greedy(prompt, 32)
    refs.append({"prompt": prompt, "prompt_ids": p, "new_ids": new, "text": tok.decode(new, skip_special_tokens=False),
                 "top2_margins": m, "generate_equal": gen == new})
    print(repr(prompt), "->", repr(refs[-1]["text"]), "| generate() equal:", gen == new, "| min margin", min(m))
json.dump({"max_new_tokens": 32, "bos_prepended": True, "prompts": refs}, open(os.path.join(a.model, "reference_greedy.json"), "w"), indent=2)

samples = []
for prompt in ["Ownership in Rust", "A trait is", "The borrow checker", "In Rust, a closure"]:
    p, new, _, _ = greedy(prompt, 96)
    samples.append({"prompt": prompt, "text": tok.decode(new)})
json.dump(samples, open(os.path.join(a.model, "samples.json"), "w"), indent=2)

import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(a.loss_csv)))
plt.figure(figsize=(7, 4))
plt.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows], label="train loss (mean over log interval)")
plt.axhline(math.log(ppl), color="r", ls="--", label=f"held-out NLL {math.log(ppl):.3f} (ppl {ppl:.2f})")
plt.xlabel("step"); plt.ylabel("cross-entropy (nats/token)"); plt.yscale("log"); plt.grid(alpha=.3); plt.legend()
plt.title(os.path.basename(os.path.normpath(a.model)))
plt.tight_layout(); plt.savefig(os.path.join(a.model, "loss.png"), dpi=110)
print("done")
