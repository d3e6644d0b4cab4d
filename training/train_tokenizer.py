#!/usr/bin/env python3
"""Train a byte-level BPE tokenizer (GPT-2 style) on the extracted rust-docs corpus.

Usage: train_tokenizer.py CORPUS_DIR OUT_DIR [--vocab 4096]
Special tokens: <unk>=0, <s>=1 (BOS), </s>=2 (EOS), matching bos_token_id 1 / eos_token_id 2.
"""
import argparse, json, os
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, processors

ap = argparse.ArgumentParser()
ap.add_argument("corpus"); ap.add_argument("out"); ap.add_argument("--vocab", type=int, default=4096)
a = ap.parse_args()
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.post_processor = processors.ByteLevel(trim_offsets=False)
tr = trainers.BpeTrainer(vocab_size=a.vocab, min_frequency=2, special_tokens=["<unk>", "<s>", "</s>"],
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tok.train([os.path.join(a.corpus, "train.txt")], tr)
os.makedirs(a.out, exist_ok=True)
tok.save(os.path.join(a.out, "tokenizer.json"))
cfg = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
    "add_bos_token": True, "add_eos_token": False,
    "model_max_length": 256,
    "clean_up_tokenization_spaces": False,
}
json.dump(cfg, open(os.path.join(a.out, "tokenizer_config.json"), "w"), indent=2)
print("vocab", tok.get_vocab_size())
