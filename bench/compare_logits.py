#!/usr/bin/env python3
"""Compare lowbit's Java FP32 logits with Hugging Face transformers on the same GGUF weights.

On the Java side (this repo, any machine):
    java -cp <classes+jars> lowbit.eval.DumpLogits java_logits_1.bin 1 4093 198 ...
writes int32 T, int32 V, T int32 token ids, then T*V float32 logits (little-endian).

On a host with torch + transformers (+ the `gguf` package):
    python3 compare_logits.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf java_logits_*.bin

transformers dequantizes the GGUF (Q4_1 / Q8_0 -> float) into a LlamaForCausalLM, undoing
llama.cpp's Q/K row permutation itself, so it is an independent implementation of both the
dequantization and the graph (rotate-half RoPE on un-permuted weights vs. lowbit's adjacent-pair
RoPE on the file's permuted rows). The script runs the same ids and reports, per file, the max
absolute logit difference, relative difference, top-1 agreement per position, and KL divergence.
Exit status 1 if any file exceeds the tolerances.
"""
import argparse
import os
import struct
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def read_dump(path):
    with open(path, "rb") as f:
        t, v = struct.unpack("<ii", f.read(8))
        ids = np.frombuffer(f.read(4 * t), dtype="<i4").astype(np.int64)
        logits = np.frombuffer(f.read(4 * t * v), dtype="<f4").reshape(t, v)
    return ids, logits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True, help="path to SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--max-abs", type=float, default=0.05, help="tolerance on max |logit difference|")
    ap.add_argument("--min-top1", type=float, default=0.99, help="required fraction of positions with equal argmax")
    ap.add_argument("dumps", nargs="+")
    args = ap.parse_args()

    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(os.path.abspath(args.gguf)), gguf_file=os.path.basename(args.gguf), torch_dtype=torch.float32)
    model.eval()
    failed = False
    for path in args.dumps:
        ids, java = read_dump(path)
        with torch.no_grad():
            ref = model(torch.tensor(ids)[None, :]).logits[0].float().numpy()
        ref = ref[:, : java.shape[1]]
        diff = np.abs(ref - java)
        max_abs = float(diff.max())
        rel = max_abs / float(np.abs(ref).max())
        top1 = float((ref.argmax(-1) == java.argmax(-1)).mean())
        lp_ref = torch.log_softmax(torch.tensor(ref), -1)
        lp_java = torch.log_softmax(torch.tensor(java), -1)
        kl = float((lp_ref.exp() * (lp_ref - lp_java)).sum(-1).mean())
        ok = max_abs <= args.max_abs and top1 >= args.min_top1
        failed |= not ok
        print(f"{path}: T={len(ids)} max|diff|={max_abs:.5f} rel={rel:.2e} top1 agree={top1:.3f} "
              f"KL(ref||java)={kl:.2e} {'OK' if ok else 'MISMATCH'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
