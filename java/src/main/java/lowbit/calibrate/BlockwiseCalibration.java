package lowbit.calibrate;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import lowbit.io.GgufFile;
import lowbit.model.LlamaConfig;
import lowbit.pipeline.Workspace;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * Block-by-block calibration of a LLaMA-family model (FlatQuant's and OmniQuant's procedure):
 *
 * <ol>
 *   <li>the calibration sequences are the first {@code (samples + heldOut) × seqLen} tokens of the
 *       workspace's calibration text (never the evaluation text), embedded as block 0's input;
 *   <li>for block i: the FP block runs on its FP inputs, giving the targets (and block i+1's FP
 *       inputs) and the channel statistics; the method prepares its parameters; AdamW with a
 *       cosine schedule trains them on mini-batches of sequences (order shuffled per epoch, seeded)
 *       to reproduce the targets from block i's inputs (FP, or with {@code quantizedInputs} the
 *       outputs of the calibrated blocks before it); losses before and after are recorded;
 *   <li>block i is committed to the checkpoint directory ({@link Checkpoint}): an interrupted run
 *       started again with the same directory and settings resumes at the first uncommitted block.
 * </ol>
 *
 * Activations live in files in the directory and are read one batch at a time; only one block's
 * weights are in memory. The calling thread's interrupt flag is checked before every step: an
 * interrupted run throws {@link CalibrationInterruptedException} and leaves the committed blocks.
 */
public final class BlockwiseCalibration {
    private BlockwiseCalibration() {}

    public static CalibrationResult run(Workspace workspace, BlockMethod method, CalibrationOptions options, Path directory,
                                        CalibrationListener listener) throws IOException {
        int total = options.samples() + options.heldOutSamples();
        int[] tokens = workspace.calibrationTokens(total * options.seqLen());
        try (GgufFile g = GgufFile.open(workspace.gguf())) {
            LlamaConfig config = LlamaConfig.fromGguf(g);
            if (options.blocks() > config.blockCount()) {
                throw new IllegalArgumentException(options.blocks() + " blocks requested, the model has " + config.blockCount());
            }
            if (options.seqLen() > config.contextLength()) {
                throw new IllegalArgumentException("sequence length " + options.seqLen() + " exceeds the context length " + config.contextLength());
            }
            String fingerprint = method.id() + " | " + options.withoutProgress() + " | " + workspace.gguf().getFileName() + " "
                    + Files.size(workspace.gguf()) + " | tokens " + java.util.Arrays.hashCode(tokens);
            Checkpoint checkpoint = Checkpoint.open(directory, fingerprint);
            if (checkpoint.completed() == 0 && !Files.exists(checkpoint.input(false, 0))) writeEmbeddings(g, config, tokens, options, checkpoint);
            RotaryEmbedding rope = RotaryEmbedding.of(config, g.hasTensor("rope_freqs.weight") ? g.readFloats("rope_freqs.weight") : null);
            for (int b = checkpoint.completed(); b < options.blocks(); b++) {
                LlamaBlock block = LlamaBlock.fromGguf(g, config, b, rope);
                new BlockRun(block, b, method, options, checkpoint, listener).run();
            }
            return new CalibrationResult(checkpoint.reports(), checkpoint.params());
        }
    }

    /** Block 0's inputs: the token embeddings of every sequence (FP and, if used, quantized stream alike). */
    private static void writeEmbeddings(GgufFile g, LlamaConfig c, int[] tokens, CalibrationOptions o, Checkpoint checkpoint) throws IOException {
        float[] embedding = g.readFloats("token_embd.weight");
        int total = o.samples() + o.heldOutSamples(), dim = c.dim();
        List<Path> files = new ArrayList<>(List.of(checkpoint.input(false, 0)));
        if (o.quantizedInputs()) files.add(checkpoint.input(true, 0));
        for (Path p : files) {
            try (ActivationFile f = ActivationFile.create(Checkpoint.temporary(p), total, o.seqLen(), dim)) {
                for (int s = 0; s < total; s++) {
                    double[] x = new double[o.seqLen() * dim];
                    for (int t = 0; t < o.seqLen(); t++) {
                        int id = tokens[s * o.seqLen() + t];
                        if (id < 0 || id >= c.vocabSize()) throw new IllegalArgumentException("token id " + id + " out of range");
                        for (int i = 0; i < dim; i++) x[t * dim + i] = embedding[id * dim + i];
                    }
                    f.write(new int[] {s}, x);
                }
                f.sync();
            }
            Files.move(Checkpoint.temporary(p), p, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        }
    }

    /** Calibration of one block, from its input files to its commit. */
    private static final class BlockRun {
        private final DecoderBlock block;
        private final int index;
        private final BlockMethod method;
        private final CalibrationOptions o;
        private final Checkpoint checkpoint;
        private final CalibrationListener listener;
        private final int total;
        private final int rows;

        BlockRun(DecoderBlock block, int index, BlockMethod method, CalibrationOptions o, Checkpoint checkpoint, CalibrationListener listener) {
            this.block = block;
            this.index = index;
            this.method = method;
            this.o = o;
            this.checkpoint = checkpoint;
            this.listener = listener;
            this.total = o.samples() + o.heldOutSamples();
            this.rows = o.seqLen();
        }

        void run() throws IOException {
            long start = System.nanoTime();
            int dim = block.dim();
            Path fpIn = checkpoint.input(false, index), qIn = checkpoint.input(true, index);
            Path fpNext = checkpoint.input(false, index + 1), qNext = checkpoint.input(true, index + 1);
            SiteStats stats = new SiteStats();
            // FP pass: targets = next block's FP inputs, and the channel statistics
            try (ActivationFile in = ActivationFile.open(fpIn, total, rows, dim);
                 ActivationFile out = ActivationFile.create(Checkpoint.temporary(fpNext), total, rows, dim)) {
                for (int[] batch : batches(total, o.batchSize())) {
                    checkInterrupt();
                    Var x = Var.constant(in.read(batch), batch.length * rows, dim);
                    out.write(batch, block.forward(Tape.fp32(), x, rows, stats.hooks()).output().value);
                }
                out.sync();
            }
            BlockSetup setup = method.prepare(index, block, stats, blockSeed(o.seed(), index));
            Path trainIn = o.quantizedInputs() ? qIn : fpIn;
            List<Double> epochLosses = new ArrayList<>();
            double initial, heldInitial, fin, heldFinal;
            int steps = 0;
            try (ActivationFile in = ActivationFile.open(trainIn, total, rows, dim);
                 ActivationFile target = ActivationFile.open(Checkpoint.temporary(fpNext), total, rows, dim)) {
                initial = evaluate(setup, in, target, 0, o.samples());
                heldInitial = evaluate(setup, in, target, o.samples(), total);
                if (!setup.params().isEmpty() && o.epochs() > 0) {
                    steps = train(setup, in, target, epochLosses);
                }
                fin = steps == 0 ? initial : evaluate(setup, in, target, 0, o.samples());
                heldFinal = steps == 0 ? heldInitial : evaluate(setup, in, target, o.samples(), total);
            }
            List<Path> next = new ArrayList<>(List.of(fpNext));
            if (o.quantizedInputs()) {
                try (ActivationFile in = ActivationFile.open(qIn, total, rows, dim);
                     ActivationFile out = ActivationFile.create(Checkpoint.temporary(qNext), total, rows, dim)) {
                    for (int[] batch : batches(total, o.batchSize())) {
                        checkInterrupt();
                        Var x = Var.constant(in.read(batch), batch.length * rows, dim);
                        out.write(batch, block.forward(Tape.fp32(), x, rows, setup.hooks()).output().value);
                    }
                    out.sync();
                }
                next.add(qNext);
            }
            Map<String, double[]> params = new LinkedHashMap<>();
            for (Param p : setup.params()) params.put(p.name(), p.values());
            BlockReport report = new BlockReport(index, initial, fin, heldInitial, heldFinal, epochLosses, steps, (System.nanoTime() - start) / 1e9);
            checkpoint.commit(index, params, report, next);
            listener.onBlockDone(report);
        }

        private int train(BlockSetup setup, ActivationFile in, ActivationFile target, List<Double> epochLosses) throws IOException {
            AdamW opt = new AdamW(setup.groups());
            CosineSchedule schedule = new CosineSchedule(o.epochs() * o.stepsPerEpoch(), o.lrFloor());
            int dim = block.dim(), step = 0;
            ProgressBar bar = o.progress() ? new ProgressBarBuilder().setTaskName("block " + index).setInitialMax((long) o.epochs() * o.stepsPerEpoch())
                    .setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(500).continuousUpdate().build() : null;
            try {
                for (int epoch = 0; epoch < o.epochs(); epoch++) {
                    int[] order = shuffled(o.samples(), new Random(o.seed() * 7919L + index * 104729L + epoch));
                    double sum = 0;
                    int count = 0;
                    for (int[] batch : batches(order, o.batchSize())) {
                        checkInterrupt();
                        Var x = Var.constant(in.read(batch), batch.length * rows, dim);
                        Var y = Var.constant(target.read(batch), batch.length * rows, dim);
                        opt.zeroGrad();
                        Tape tape = Tape.fp32();
                        Var loss = setup.loss().loss(tape, block.forward(tape, x, rows, setup.hooks()), y);
                        if (!Double.isFinite(loss.scalar())) throw new ArithmeticException("block " + index + ": loss " + loss.scalar() + " at step " + step);
                        tape.backward(loss);
                        opt.step(schedule.factor(step));
                        sum += loss.scalar() * batch.length;
                        count += batch.length;
                        listener.onStep(index, epoch, step, loss.scalar());
                        step++;
                        if (bar != null) {
                            bar.step();
                            bar.setExtraMessage(String.format(" epoch %d loss %.3e", epoch, loss.scalar()));
                        }
                    }
                    epochLosses.add(sum / count);
                }
            } finally {
                if (bar != null) bar.close();
            }
            return step;
        }

        /** Mean loss over samples [from, to) without learning (NaN for an empty range). */
        private double evaluate(BlockSetup setup, ActivationFile in, ActivationFile target, int from, int to) throws IOException {
            if (from >= to) return Double.NaN;
            int[] ids = new int[to - from];
            for (int i = 0; i < ids.length; i++) ids[i] = from + i;
            double sum = 0;
            for (int[] batch : batches(ids, o.batchSize())) {
                checkInterrupt();
                Var x = Var.constant(in.read(batch), batch.length * rows, block.dim());
                Var y = Var.constant(target.read(batch), batch.length * rows, block.dim());
                Tape tape = Tape.fp32();
                sum += setup.loss().loss(tape, block.forward(tape, x, rows, setup.hooks()), y).scalar() * batch.length;
            }
            return sum / ids.length;
        }
    }

    private static void checkInterrupt() {
        if (Thread.interrupted()) throw new CalibrationInterruptedException("calibration interrupted; committed blocks are kept and a rerun resumes");
    }

    static List<int[]> batches(int n, int size) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = i;
        return batches(ids, size);
    }

    static List<int[]> batches(int[] ids, int size) {
        List<int[]> out = new ArrayList<>();
        for (int i = 0; i < ids.length; i += size) out.add(java.util.Arrays.copyOfRange(ids, i, Math.min(ids.length, i + size)));
        return out;
    }

    private static int[] shuffled(int n, Random rnd) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) a[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        return a;
    }

    /**
     * The seed {@link BlockMethod#prepare} gets for block {@code block} of a run seeded with {@code
     * seed}: methods that rebuild a block's parameters from a checkpoint (e.g. FlatQuant's random
     * orthogonal starts) need the same number.
     */
    public static long blockSeed(long seed, int block) {
        return seed * 1_000_003L + block;
    }
}
