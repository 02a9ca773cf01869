package lowbit.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.LongAdder;
import lowbit.Backend;
import lowbit.Context;
import lowbit.dgq.ActivationMode;
import lowbit.dgq.DgqConfig;
import lowbit.dgq.DgqLinear;
import lowbit.dgq.DgqWeightQuantizer;
import lowbit.eval.Perplexity;
import lowbit.model.FloatLinear;
import lowbit.model.KvCache;
import lowbit.model.LinearOp;
import lowbit.model.DecoderModel;
import lowbit.pipeline.Workspace;
import lowbit.quant.FlattenPlan;
import lowbit.quant.QuantConfig;
import lowbit.quant.QuantizedLinear;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code lowbit bench-cpu}: prefill and decode speed of the quantized model on the native CPU
 * backend, measured like llama.cpp's {@code llama-bench} (prefill: {@code -p} tokens from an empty
 * cache, logits of the last one; decode: {@code -n} single-token steps from an empty cache), with
 * llama-bench itself run on the same GGUF and thread count before and after when its path is given,
 * the machine's load average, the quantized model's perplexity, and a per-op profile.
 */
@Command(name = "bench-cpu", description = "Prefill/decode tokens/s on the CPU backend, beside llama.cpp's llama-bench.")
final class BenchCpuCommand implements Callable<Integer> {
    @Mixin
    ModelOptions options = new ModelOptions();

    @Option(names = "--method", description = "w8a8-token (INT8 weights per channel, INT8 activations per token), w4a8-rtn, "
            + "dgq-g64 (DGQ A8W4, G=64, weights searched on weight MSE only: same speed as the calibrated layer) or fp; default ${DEFAULT-VALUE}")
    String method = "w8a8-token";

    @Option(names = "--head", description = "LM head: int8 (quantized like the blocks, W8A8 per token) or fp32; default ${DEFAULT-VALUE}")
    String head = "int8";

    @Option(names = {"-t", "--threads"}, description = "native worker threads, default ${DEFAULT-VALUE}")
    int threads = 2;

    @Option(names = {"-p", "--prompt"}, description = "prefill tokens, default ${DEFAULT-VALUE}")
    int prompt = 512;

    @Option(names = {"-n", "--gen"}, description = "decode steps, default ${DEFAULT-VALUE}")
    int gen = 128;

    @Option(names = {"-r", "--reps"}, description = "repetitions (after one warm-up), default ${DEFAULT-VALUE}")
    int reps = 3;

    @Option(names = "--llama-bench", description = "path of llama.cpp's llama-bench, run on the same GGUF before and after")
    Path llamaBench;

    @Option(names = "--ppl-windows", description = "windows of 512 evaluation tokens for the quantized model's perplexity (0: skip), default ${DEFAULT-VALUE}")
    int pplWindows = 2;

    @Override
    public Integer call() throws Exception {
        if (prompt < 1 || gen < 1 || reps < 1 || threads < 1) throw new IllegalArgumentException("-p, -n, -r and -t must be >= 1");
        Workspace ws = Workspace.open(options.model);
        if (llamaBench != null && ws.isCheckpoint()) throw new IllegalArgumentException("--llama-bench needs a GGUF model, not a checkpoint directory");
        System.out.printf(Locale.ROOT, "model %s; %s, head %s; %d threads (Java common pool parallelism %d + caller); load %s%n",
                ws.gguf(), method, head, threads, java.util.concurrent.ForkJoinPool.getCommonPoolParallelism(), loadAverage());
        LlamaBench.Result before = llamaBench == null ? null : LlamaBench.run(llamaBench, ws.gguf(), threads, prompt, gen, reps);
        if (before != null) System.out.printf(Locale.ROOT, "llama-bench (before): prefill %.1f ± %.1f tok/s, decode %.1f ± %.1f tok/s%n",
                before.prefill(), before.prefillSd(), before.decode(), before.decodeSd());

        try (Context ctx = Context.open(Backend.CPU)) {
            ctx.setThreads(threads);
            DecoderModel model = ws.loadModel();
            Map<String, LongAdder> byKind = new LinkedHashMap<>();
            List<LinearOp> owned = quantize(model, ctx, byKind);
            try {
                int contextNeeded = Math.max(prompt, gen);
                KvCache cache = model.newKvCache(contextNeeded);
                int[] tokens = ws.evaluationTokens(1, Math.max(prompt, 2));
                run(model, cache, tokens, byKind, null); // warm-up (JIT)
                double[] pp = new double[reps], tg = new double[reps];
                Profile profile = new Profile(byKind);
                for (int r = 0; r < reps; r++) {
                    double[] rates = run(model, cache, tokens, byKind, profile);
                    pp[r] = rates[0];
                    tg[r] = rates[1];
                }
                LlamaBench.Result after = llamaBench == null ? null : LlamaBench.run(llamaBench, ws.gguf(), threads, prompt, gen, reps);
                System.out.println();
                System.out.printf(Locale.ROOT, "| program | prefill %d (tok/s) | decode %d (tok/s) |%n|---|---:|---:|%n", prompt, gen);
                System.out.printf(Locale.ROOT, "| lowbit %s, head %s | %.1f ± %.1f | %.1f ± %.1f |%n", method, head, mean(pp), sd(pp), mean(tg), sd(tg));
                for (LlamaBench.Result b : new LlamaBench.Result[] {before, after}) {
                    if (b == null) continue;
                    System.out.printf(Locale.ROOT, "| llama.cpp llama-bench (%s) | %.1f ± %.1f | %.1f ± %.1f |%n", b == before ? "before" : "after",
                            b.prefill(), b.prefillSd(), b.decode(), b.decodeSd());
                }
                if (before != null) {
                    double refPp = (before.prefill() + after.prefill()) / 2, refTg = (before.decode() + after.decode()) / 2;
                    System.out.printf(Locale.ROOT, "lowbit / llama.cpp (mean of before and after): prefill %.2fx (bar >= 1.00), decode %.2fx (bar >= 0.80)%n",
                            mean(pp) / refPp, mean(tg) / refTg);
                    System.out.println("llama.cpp build: " + before.build());
                }
                System.out.println("load average at the end: " + loadAverage());
                profile.print(reps);
                if (pplWindows > 0) {
                    int[] eval = ws.evaluationTokens(pplWindows, 512);
                    System.out.println("perplexity of this model (" + pplWindows + " windows of 512, no BOS): "
                            + Perplexity.evaluate(model, eval, 512, null));
                }
            } finally {
                for (LinearOp op : owned) op.close();
            }
        }
        return 0;
    }

    /** Replaces every block linear (and the head when int8) by the chosen quantized layer, wrapped in a timer. */
    private List<LinearOp> quantize(DecoderModel model, Context ctx, Map<String, LongAdder> byKind) {
        List<LinearOp> owned = new ArrayList<>();
        int weightBits;
        switch (method) {
            case "w8a8-token": weightBits = 8; break;
            case "w4a8-rtn": weightBits = 4; break;
            case "dgq-g64": weightBits = 4; break;
            case "fp": weightBits = 0; break;
            default: throw new IllegalArgumentException("--method must be w8a8-token, w4a8-rtn, dgq-g64 or fp, not " + method);
        }
        if (!head.equals("int8") && !head.equals("fp32")) throw new IllegalArgumentException("--head must be int8 or fp32, not " + head);
        for (String name : model.linearNames()) {
            LinearOp op = model.linear(name);
            boolean isHead = name.equals("output");
            boolean quantize = isHead ? head.equals("int8") && weightBits > 0 : weightBits > 0;
            if (quantize) {
                FloatLinear f = (FloatLinear) op;
                int bits = isHead ? 8 : weightBits;
                if (!isHead && method.equals("dgq-g64")) {
                    DgqConfig cfg = DgqConfig.defaults().withGroup(64).withSearch(4, 16, 0);
                    DgqLinear d = DgqLinear.of(ctx, DgqWeightQuantizer.quantize(f.weight(), f.outFeatures(), f.inFeatures(), null, 0, cfg),
                            f.bias(), null, ActivationMode.PER_TOKEN, Float.NaN);
                    owned.add(d);
                    String kind = name.substring(name.lastIndexOf('.') + 1);
                    model.replaceLinear(name, new TimedLinear(d, byKind.computeIfAbsent(kind, k -> new LongAdder())));
                    continue;
                }
                QuantizedLinear q = QuantizedLinear.create(f.weight(), f.bias(), f.outFeatures(), f.inFeatures(),
                        FlattenPlan.identity(f.inFeatures()), bits, 8, true, null, QuantConfig.ActivationScale.DYNAMIC_PER_TOKEN, Float.NaN)
                        .on(ctx);
                owned.add(q);
                op = q;
            }
            String kind = name.substring(name.lastIndexOf('.') + 1);
            model.replaceLinear(name, new TimedLinear(op, byKind.computeIfAbsent(kind, k -> new LongAdder())));
        }
        return owned;
    }

    /** One prefill of {@code prompt} tokens and {@code gen} decode steps, each from an empty cache; tokens/s of both. */
    private double[] run(DecoderModel model, KvCache cache, int[] tokens, Map<String, LongAdder> byKind, Profile profile) {
        int[] p = java.util.Arrays.copyOf(tokens, prompt);
        profile = profile == null ? new Profile(byKind) : profile;
        profile.reset();
        cache.reset();
        long t0 = System.nanoTime();
        float[] hidden = model.forwardHidden(cache, p);
        model.logits(java.util.Arrays.copyOfRange(hidden, (prompt - 1) * model.shape().dim(), prompt * model.shape().dim()), 1);
        long t1 = System.nanoTime();
        profile.endPrefill(t1 - t0);
        cache.reset();
        int next = tokens[0];
        long t2 = System.nanoTime();
        for (int i = 0; i < gen; i++) {
            float[] logits = model.forward(cache, new int[] {next});
            next = argmax(logits);
        }
        long t3 = System.nanoTime();
        profile.endDecode(t3 - t2);
        return new double[] {prompt / ((t1 - t0) / 1e9), gen / ((t3 - t2) / 1e9)};
    }

    /** Wall time per linear kind in prefill and decode, accumulated over repetitions. */
    private static final class Profile {
        final Map<String, LongAdder> byKind;
        final Map<String, Long> prefill = new LinkedHashMap<>(), decode = new LinkedHashMap<>();
        long prefillTotal, decodeTotal;
        final Map<String, Long> mark = new LinkedHashMap<>();

        Profile(Map<String, LongAdder> byKind) {
            this.byKind = byKind;
        }

        void reset() {
            mark.clear();
            for (Map.Entry<String, LongAdder> e : byKind.entrySet()) mark.put(e.getKey(), e.getValue().sum());
        }

        void endPrefill(long nanos) {
            prefillTotal += nanos;
            add(prefill);
            reset();
        }

        void endDecode(long nanos) {
            decodeTotal += nanos;
            add(decode);
        }

        private void add(Map<String, Long> into) {
            for (Map.Entry<String, LongAdder> e : byKind.entrySet()) {
                into.merge(e.getKey(), e.getValue().sum() - mark.getOrDefault(e.getKey(), 0L), Long::sum);
            }
        }

        void print(int reps) {
            System.out.println("profile (ms per run, mean of " + reps + "): linear layers by kind, then everything else "
                    + "(attention, norms, RoPE, embedding, copies)");
            System.out.printf(Locale.ROOT, "%-12s %10s %10s%n", "op", "prefill", "decode");
            long pl = 0, dl = 0;
            for (String k : byKind.keySet()) {
                long p = prefill.getOrDefault(k, 0L), d = decode.getOrDefault(k, 0L);
                pl += p;
                dl += d;
                System.out.printf(Locale.ROOT, "%-12s %10.1f %10.1f%n", k, p / 1e6 / reps, d / 1e6 / reps);
            }
            System.out.printf(Locale.ROOT, "%-12s %10.1f %10.1f%n", "(linear)", pl / 1e6 / reps, dl / 1e6 / reps);
            System.out.printf(Locale.ROOT, "%-12s %10.1f %10.1f%n", "(other)", (prefillTotal - pl) / 1e6 / reps, (decodeTotal - dl) / 1e6 / reps);
            System.out.printf(Locale.ROOT, "%-12s %10.1f %10.1f%n", "(total)", prefillTotal / 1e6 / reps, decodeTotal / 1e6 / reps);
        }
    }

    private static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    private static double mean(double[] v) {
        double s = 0;
        for (double x : v) s += x;
        return s / v.length;
    }

    private static double sd(double[] v) {
        if (v.length < 2) return 0;
        double m = mean(v), s = 0;
        for (double x : v) s += (x - m) * (x - m);
        return Math.sqrt(s / (v.length - 1));
    }

    private static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).trim();
        } catch (java.io.IOException | RuntimeException e) {
            return "unknown";
        }
    }
}
