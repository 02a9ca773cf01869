#!/usr/bin/env python3
"""Library GEMM baselines on the GPU host, for the same shapes as lowbit.bench.GemmBench.

Per (M, K, N): cuBLAS FP16 (torch.matmul, fp16 in/out), cuBLASLt INT8 (torch._int_mm, s8 x s8 ->
s32) and FP8 e4m3 (torch._scaled_mm with per-row x per-column fp32 scales, bf16 out). Times are
medians of 7 batches of back-to-back launches (each batch ~3 ms, CUDA events), with the weights
rotated through >= 128 MB so small shapes are not served from L2, as GemmBench does.

    python3 bench/torch_gemm_baselines.py [--csv out.csv]
"""
import argparse
import statistics

import torch

SHAPES = [(4096, 4096), (4096, 14336), (14336, 4096), (8192, 8192), (8192, 28672), (28672, 8192)]
MS = [1, 16, 64, 256, 1024, 2048, 4096, 8192]
ROTATE = 128 << 20


def timed(fn):
    for i in range(3):
        fn(i)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(5):
        fn(i)
    end.record()
    end.synchronize()
    est = start.elapsed_time(end) / 5 / 1e3
    per_batch = int(max(10, min(5000, 3e-3 / max(est, 1e-7))))
    times = []
    launch = 0
    for _ in range(7):
        start.record()
        for _ in range(per_batch):
            fn(launch)
            launch += 1
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / per_batch)
    return statistics.median(times)


def copies(t):
    n = max(1, -(-ROTATE // (t.numel() * t.element_size())))
    return [t] + [t.clone() for _ in range(n - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv")
    args = ap.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    rows = []
    for k, n in SHAPES:
        w16 = copies((torch.randint(-127, 128, (n, k), device=dev).to(torch.float16) / 64))
        w8 = copies(torch.randint(-127, 128, (n, k), device=dev, dtype=torch.int8))
        w8t = [w.t() for w in w8]  # K x N column-major view: the TN layout _int_mm takes
        wf8 = copies((torch.randn(n, k, device=dev) * 0.5).to(torch.float8_e4m3fn))
        wf8t = [w.t() for w in wf8]
        sb = torch.rand(1, n, device=dev, dtype=torch.float32) + 0.5
        for m in MS:
            x16 = torch.randint(-127, 128, (m, k), device=dev).to(torch.float16) / 64
            x8 = torch.randint(-127, 128, (m, k), device=dev, dtype=torch.int8)
            xf8 = (torch.randn(m, k, device=dev) * 0.5).to(torch.float8_e4m3fn)
            sa = torch.rand(m, 1, device=dev, dtype=torch.float32) + 0.5
            ops = 2.0 * m * n * k
            res = {}
            res["fp16"] = timed(lambda i: torch.matmul(x16, w16[i % len(w16)].t()))
            try:
                res["int8"] = timed(lambda i: torch._int_mm(x8, w8t[i % len(w8t)]))
            except RuntimeError as e:
                res["int8"] = None
                res["int8_err"] = str(e).splitlines()[0][:60]
            try:
                res["fp8"] = timed(lambda i: torch._scaled_mm(xf8, wf8t[i % len(wf8t)], scale_a=sa, scale_b=sb,
                                                              out_dtype=torch.bfloat16))
            except RuntimeError as e:
                res["fp8"] = None
                res["fp8_err"] = str(e).splitlines()[0][:60]
            rows.append((m, k, n, res, ops))
            fmt = lambda t: f"{t * 1e6:9.1f} {ops / t / 1e12:6.0f}" if t else f"{'n/a':>9} {'':>6}"
            print(f"{m:5d} {k:6d} {n:6d}  fp16 {fmt(res['fp16'])}  int8 {fmt(res['int8'])}  fp8 {fmt(res['fp8'])}"
                  + (f"  ({res.get('int8_err', '')}{res.get('fp8_err', '')})" if res["int8"] is None or res["fp8"] is None else ""),
                  flush=True)
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("m,k,n,fp16_us,int8_us,fp8_us\n")
            for m, k, n, res, ops in rows:
                us = lambda t: f"{t * 1e6:.2f}" if t else ""
                f.write(f"{m},{k},{n},{us(res['fp16'])},{us(res['int8'])},{us(res['fp8'])}\n")


if __name__ == "__main__":
    main()
