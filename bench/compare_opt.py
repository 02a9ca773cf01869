#!/usr/bin/env python3
"""Check lowbit's Java FP32 OPT (and LLaMA) graphs from Hugging Face checkpoints against transformers.

Two phases around the Java dump (lowbit.eval.DumpLogits with -Dlowbit.model=DIR):

    python3 bench/compare_opt.py make WORK      # tiny random models -> WORK/<name>/ (save_pretrained,
                                                #   safetensors) and WORK/prompts.txt (fixed token ids)
    for each <name> and prompt p in WORK/prompts.txt:
        java -Dlowbit.model=WORK/<name> -cp ... lowbit.eval.DumpLogits WORK/<name>/java_<p>.bin <ids>
    python3 bench/compare_opt.py compare WORK   # reloads each model with transformers, runs the same ids,
                                                #   prints a table, exit 1 beyond tolerance

Models (seeded, random; init std raised from the default 0.02 and LayerNorm/RMSNorm gains and all
biases perturbed, so that logits are O(1) and every parameter matters):
  opt-prenorm    OPTConfig hidden 64, 2 layers, 4 heads, ffn 256, vocab 512, max_position 128,
                 do_layer_norm_before=True (tied LM head)
  opt-postnorm   the same with do_layer_norm_before=False (OPT-350m's layout, no final LayerNorm)
  llama-gqa      LlamaConfig hidden 64, 2 layers, 4 heads / 2 KV heads, intermediate 256, vocab 512,
                 max_position 128, rope_theta 10000, untied LM head
  llama-theta5e5 the same with rope_theta 500000 (as Llama 3 configs), which checks that lowbit reads
                 the RoPE base from the config that transformers writes

Prompts: "full" = 128 ids (the whole context, every learned position) and "short" = 9 ids, drawn
with a fixed seed. All positions and all 512 logits are compared.

Tolerance (both sides FP32, reference on the CPU so no TF32): max |java - ref| <= 1e-4 * max(1,
max |ref|). FP32's unit roundoff is 6e-8; the two implementations differ only in summation order (dot
products of length <= 256, softmax over <= 128 keys, LayerNorm statistics) and lowbit's FastExp
(a few ulps), so over 2 blocks the expected difference is ~1e-6 relative (the 30-block SmolLM2
comparison in RESULTS.md gave 3e-6). 1e-4 leaves ~100x margin while any graph error (a missing bias,
positions shifted by OPT's offset of 2, a norm in the wrong place, the wrong RoPE base) moves logits by
1e-2..1 relative. Top-1 must agree at every position whose reference top-2 gap exceeds twice the
tolerance (near-ties are reported, not failed).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

VOCAB, MAX_POS = 512, 128
MODELS = ["opt-prenorm", "opt-postnorm", "llama-gqa", "llama-theta5e5"]
REL_TOL = 1e-4


def build(name):
    from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM
    torch.manual_seed(1234 + MODELS.index(name))
    if name.startswith("opt"):
        cfg = OPTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=256, vocab_size=VOCAB,
                        max_position_embeddings=MAX_POS, word_embed_proj_dim=64, do_layer_norm_before=(name == "opt-prenorm"),
                        init_std=0.15, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0,
                        pad_token_id=1, bos_token_id=2, eos_token_id=2)
        cfg._attn_implementation = "eager"
        model = OPTForCausalLM(cfg)
    else:
        theta = 500000.0 if name == "llama-theta5e5" else 10000.0
        cfg = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          intermediate_size=256, vocab_size=VOCAB, max_position_embeddings=MAX_POS, rms_norm_eps=1e-5,
                          rope_theta=theta, initializer_range=0.15, tie_word_embeddings=False, attention_bias=False,
                          mlp_bias=False)
        rp = getattr(cfg, "rope_parameters", None)
        if isinstance(rp, dict):
            rp["rope_theta"] = theta
        cfg._attn_implementation = "eager"
        model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname and pname.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif pname.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    return model.float().eval()


def prompts():
    rng = np.random.RandomState(7)
    return {"full": rng.randint(0, VOCAB, size=MAX_POS).tolist(), "short": rng.randint(0, VOCAB, size=9).tolist()}


def make(work):
    os.makedirs(work, exist_ok=True)
    for name in MODELS:
        d = os.path.join(work, name)
        try:
            model = build(name)
        except Exception as e:  # reported; compare then fails on the missing dump
            print(f"{name}: could not build: {type(e).__name__}: {e}")
            continue
        try:
            model.save_pretrained(d, safe_serialization=True)
        except TypeError:  # newer transformers: safetensors is the only format
            model.save_pretrained(d)
        files = sorted(os.listdir(d))
        cfg = json.load(open(os.path.join(d, "config.json")))
        rope = {k: cfg[k] for k in ("rope_theta", "rope_parameters", "rope_scaling") if k in cfg}
        print(f"{name}: {files} {rope if rope else ''}")
    with open(os.path.join(work, "prompts.txt"), "w") as f:
        for p, ids in prompts().items():
            f.write(p + " " + ",".join(map(str, ids)) + "\n")


def read_dump(path):
    with open(path, "rb") as f:
        t, v = struct.unpack("<ii", f.read(8))
        ids = np.frombuffer(f.read(4 * t), dtype="<i4").astype(np.int64)
        logits = np.frombuffer(f.read(4 * t * v), dtype="<f4").reshape(t, v)
    return ids, logits


def compare(work):
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(4)
    failed = False
    rows = []
    for name in MODELS:
        d = os.path.join(work, name)
        if not os.path.isdir(d):
            rows += [(name, p, len(ids), None) for p, ids in prompts().items()]
            failed = True
            continue
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        for p, ids in prompts().items():
            path = os.path.join(d, f"java_{p}.bin")
            if not os.path.exists(path):
                rows.append((name, p, len(ids), None))
                failed = True
                continue
            jids, java = read_dump(path)
            assert list(jids) == ids, f"{path}: ids differ from prompts.txt"
            with torch.no_grad():
                ref = model(torch.tensor(ids)[None, :]).logits[0].double().numpy()
            ref = ref[:, : java.shape[1]]
            tol = REL_TOL * max(1.0, float(np.abs(ref).max()))
            diff = np.abs(ref - java)
            top2 = np.sort(ref, axis=-1)[:, -2:]
            decisive = (top2[:, 1] - top2[:, 0]) > 2 * tol
            agree = ref.argmax(-1) == java.argmax(-1)
            ok = float(diff.max()) <= tol and bool(agree[decisive].all())
            failed |= not ok
            rows.append((name, p, len(ids), dict(max_abs=float(diff.max()), rel=float(diff.max()) / float(np.abs(ref).max()),
                                                 max_ref=float(np.abs(ref).max()), tol=tol, top1=float(agree.mean()),
                                                 ties=int((~decisive).sum()), ok=ok)))
    print(f"{'model':<15} {'prompt':<6} {'T':>4} {'max|ref|':>9} {'max|diff|':>10} {'rel':>9} {'tol':>8} {'top-1':>6} {'ties':>4}  result")
    for name, p, t, r in rows:
        if r is None:
            print(f"{name:<15} {p:<6} {t:>4}  (no Java dump)  FAIL")
            continue
        print(f"{name:<15} {p:<6} {t:>4} {r['max_ref']:>9.3f} {r['max_abs']:>10.2e} {r['rel']:>9.2e} {r['tol']:>8.1e} "
              f"{r['top1']:>6.3f} {r['ties']:>4}  {'OK' if r['ok'] else 'MISMATCH'}")
    sys.exit(1 if failed else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["make", "compare"])
    ap.add_argument("work")
    a = ap.parse_args()
    make(a.work) if a.phase == "make" else compare(a.work)


if __name__ == "__main__":
    main()
