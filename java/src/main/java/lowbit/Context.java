package lowbit;

import java.util.Objects;
import lowbit.bridge.LowbitNative;
import lowbit.bridge.lowbit_buffer;
import lowbit.bridge.lowbit_context;

/**
 * A backend (CPU or one CUDA device) with its memory and its operations: quantization, integer
 * GEMMs and the dequantizing epilogue. Thread-safe: several threads may use one context at once.
 *
 * <pre>{@code
 * try (Context ctx = Context.open(Backend.auto());
 *      Tensor x = ctx.allocate(DType.F32, tokens, k).copyFrom(activations);
 *      Tensor w = ctx.allocate(DType.F32, n, k).copyFrom(weights);
 *      QuantizedTensor qx = ctx.quantize(x, 8, Granularity.PER_ROW);
 *      QuantizedTensor qw = ctx.quantize(w, 4, Granularity.PER_ROW);
 *      Tensor y = ctx.gemm(qx, qw, null, DType.F32)) {
 *     float[] out = y.toFloatArray();   // ≈ x · wᵀ
 * }
 * }</pre>
 *
 * GEMMs compute {@code C[M,N] = A[M,K] · B[N,K]ᵀ}: A holds activations (one token per row), B
 * weights (one output channel per row). Supported operand pairs: S8×S8, S8×S4 (INT4 weights) and
 * S4×S4.
 */
public final class Context extends NativeResource {
    private final lowbit_context handle;
    private final Backend backend;

    private Context(lowbit_context handle, Backend backend, int device) {
        super(() -> LowbitNative.lowbit_context_destroy(handle),
                backend == Backend.CUDA ? "CUDA context on device " + device : "CPU context");
        this.handle = handle;
        this.backend = backend;
    }

    /** Opens a context on the backend (device 0 for CUDA). */
    public static Context open(Backend backend) {
        return open(backend, 0);
    }

    /**
     * Opens a context. CUDA without a CUDA build, driver or device throws {@link
     * NoDeviceException} (or a {@link LowbitException} with status UNSUPPORTED for a CPU-only build).
     */
    public static Context open(Backend backend, int device) {
        Objects.requireNonNull(backend, "backend");
        if (device < 0) {
            throw new IllegalArgumentException("device index must be >= 0, got " + device);
        }
        Lowbit.ensureLoaded();
        lowbit_context out = new lowbit_context();
        Lowbit.check(LowbitNative.lowbit_context_create(backend.code, device, out));
        return new Context(out, backend, device);
    }

    public Backend backend() {
        return backend;
    }

    /** CPU backend: the instruction-set level of the integer kernels (all give identical bits). */
    public void setCpuIsa(CpuIsa isa) {
        Objects.requireNonNull(isa, "isa");
        try (Lease l = new Lease(this)) {
            Lowbit.check(LowbitNative.lowbit_context_set_cpu_isa(handle, isa.code));
        }
    }

    /** CPU backend: worker threads per operation (0 = all hardware threads). */
    public void setThreads(int threads) {
        if (threads < 0) {
            throw new IllegalArgumentException("threads must be >= 0 (0 = all hardware threads), got " + threads);
        }
        try (Lease l = new Lease(this)) {
            Lowbit.check(LowbitNative.lowbit_context_set_threads(handle, threads));
        }
    }

    /** Waits for queued work (CUDA) and reports errors the device saw meanwhile. */
    public void synchronize() {
        try (Lease l = new Lease(this)) {
            Lowbit.check(LowbitNative.lowbit_context_synchronize(handle));
        }
    }

    // ---- memory --------------------------------------------------------------------------------

    /** A {@code rows × cols} tensor with undefined contents. */
    public Tensor allocate(DType dtype, long rows, long cols) {
        Objects.requireNonNull(dtype, "dtype");
        if (rows <= 0 || cols <= 0) {
            throw new IllegalArgumentException("tensor dimensions must be positive, got " + rows + " x " + cols);
        }
        long ld = dtype == DType.S4 ? cols + (cols & 1) : cols;
        long elements;
        try {
            elements = Math.multiplyExact(rows, ld);
        } catch (ArithmeticException e) {
            elements = Long.MAX_VALUE;
        }
        if (elements > (1L << 48)) {
            throw new IllegalArgumentException("tensor " + rows + " x " + cols + " is too large");
        }
        long bytes = dtype.bytesFor(elements);
        lowbit_buffer out = new lowbit_buffer();
        try (Lease l = new Lease(this)) {
            Lowbit.check(LowbitNative.lowbit_buffer_alloc(handle, bytes, out));
        }
        return new Tensor(this, out, dtype, rows, cols, ld);
    }

    /** An F32 tensor holding {@code data} ({@code rows × cols}, row-major). */
    public Tensor upload(float[] data, long rows, long cols) {
        Tensor t = allocate(DType.F32, rows, cols);
        return fill(t, () -> t.copyFrom(data));
    }

    /** An S8 tensor holding {@code data}, or an S4 tensor holding packed bytes. */
    public Tensor upload(byte[] data, DType dtype, long rows, long cols) {
        Tensor t = allocate(dtype, rows, cols);
        return fill(t, () -> t.copyFrom(data));
    }

    /** An F16 or BF16 tensor holding bit patterns. */
    public Tensor upload(short[] data, DType dtype, long rows, long cols) {
        Tensor t = allocate(dtype, rows, cols);
        return fill(t, () -> t.copyFrom(data));
    }

    private static Tensor fill(Tensor t, Runnable copy) {
        try {
            copy.run();
            return t;
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
    }

    // ---- quantization --------------------------------------------------------------------------

    /** Uninitialised storage for a quantized {@code rows × cols} matrix (S8 or packed S4 + F32 scales). */
    public QuantizedTensor allocateQuantized(long rows, long cols, int bits, Granularity granularity, int group) {
        Objects.requireNonNull(granularity, "granularity");
        if (bits != 8 && bits != 4) {
            throw new IllegalArgumentException("bits must be 8 or 4, got " + bits);
        }
        long scaleCount = granularity.scaleCount(rows, cols, group);
        Tensor q = allocate(bits == 8 ? DType.S8 : DType.S4, rows, cols);
        try {
            return new QuantizedTensor(q, allocate(DType.F32, 1, scaleCount), granularity, group);
        } catch (RuntimeException e) {
            q.close();
            throw e;
        }
    }

    /** Dynamic symmetric quantization to {@code bits} (8 or 4); see {@code lowbit.h} for the math. */
    public QuantizedTensor quantize(Tensor x, int bits, Granularity granularity) {
        return quantize(x, bits, granularity, 0);
    }

    /**
     * Dynamic quantization of {@code x} (F32/F16/BF16); {@code group} is used by {@link
     * Granularity#PER_GROUP} only. NaN or ±Inf in {@code x} throws {@link NonFiniteInputException}.
     */
    public QuantizedTensor quantize(Tensor x, int bits, Granularity granularity, int group) {
        checkOwn(x, "x");
        QuantizedTensor out = allocateQuantized(x.rows(), x.cols(), bits, granularity, group);
        try {
            quantizeInto(x, out);
            return out;
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
    }

    /** Dynamic quantization into existing storage: computes and writes {@code out}'s scales. */
    public void quantizeInto(Tensor x, QuantizedTensor out) {
        runQuantize(x, out, false);
    }

    /**
     * Static quantization: uses the scales already in {@code out.scales()} (from calibration; each
     * finite and > 0) and writes the values.
     */
    public void quantizeWithScales(Tensor x, QuantizedTensor out) {
        runQuantize(x, out, true);
    }

    /**
     * Uploads a flatten plan: {@code sourceIndex[j]} in {@code [0, sourceCols)} and a finite {@code
     * multiplier[j]} for each expanded column j (see {@link ExpansionPlan}).
     */
    public ExpansionPlan uploadPlan(int[] sourceIndex, float[] multiplier, long sourceCols) {
        Objects.requireNonNull(sourceIndex, "sourceIndex");
        Objects.requireNonNull(multiplier, "multiplier");
        if (sourceIndex.length == 0 || sourceIndex.length != multiplier.length) {
            throw new IllegalArgumentException("a plan needs equally many (>= 1) source indices and multipliers, got "
                    + sourceIndex.length + " and " + multiplier.length);
        }
        for (int j = 0; j < sourceIndex.length; j++) {
            if (sourceIndex[j] < 0 || sourceIndex[j] >= sourceCols || !Float.isFinite(multiplier[j])) {
                throw new IllegalArgumentException("plan entry " + j + " (source column " + sourceIndex[j]
                        + ", multiplier " + multiplier[j] + ") is invalid for " + sourceCols + " source columns");
            }
        }
        int prefix = 0;
        while (prefix < sourceIndex.length && prefix < sourceCols && sourceIndex[prefix] == prefix) {
            prefix++;
        }
        Tensor index = allocate(DType.S32, 1, sourceIndex.length);
        try {
            index.copyFrom(sourceIndex);
            Tensor mult = upload(multiplier, 1, multiplier.length);
            return new ExpansionPlan(index, mult, sourceCols, prefix);
        } catch (RuntimeException e) {
            index.close();
            throw e;
        }
    }

    /**
     * Flatten-and-quantize in one pass: expands {@code x} by {@code plan} and quantizes the result
     * into {@code out} ({@code x.rows × plan.outCols}) with dynamic scales.
     */
    public void flattenQuantizeInto(Tensor x, ExpansionPlan plan, QuantizedTensor out) {
        runQuantize(x, Objects.requireNonNull(plan, "plan"), out, false);
    }

    /** As {@link #flattenQuantizeInto} with the static scales already in {@code out.scales()}. */
    public void flattenQuantizeWithScales(Tensor x, ExpansionPlan plan, QuantizedTensor out) {
        runQuantize(x, Objects.requireNonNull(plan, "plan"), out, true);
    }

    /** The largest Kronecker factor {@link #kronQuantizeInto} accepts ({@code n1, n2 <= 128}). */
    public static final int KRON_MAX_FACTOR = LowbitNative.LOWBIT_KRON_MAX_FACTOR;

    /**
     * FlatQuant's online transform fused with per-token quantization ({@code lowbit_kron_quantize}):
     * every row x of {@code x} (F32/F16/BF16, {@code n1·n2} columns) becomes {@code y = x·(P1 ⊗ P2)}
     * ({@code Y = P1ᵀ·X·P2} for X the row read as a row-major {@code n1 × n2} matrix), quantized with
     * one scale per row from the clipped range: {@code amax = max(|clipMax·max y|, |clipMin·min y|)},
     * {@code scale = amax/qmax}, codes {@code clamp(rint(y/scale), −qmax, qmax)}. The products are
     * fixed-order float32 FMA chains, so codes and scales are bit-identical on every backend (the
     * order is spelled out in {@code lowbit.h}).
     *
     * @param p1 F32 {@code n1 × n1}, dense ({@code n1 <= } {@link #KRON_MAX_FACTOR})
     * @param p2 F32 {@code n2 × n2}, dense
     * @param clipMax factor of the range's maximum, in (0, 1] (σ of the learned logit; 1 = none)
     * @param clipMin factor of the range's minimum, in (0, 1]
     * @param out from {@link #allocateQuantized} with {@code x.rows × n1·n2}, 8 or 4 bits, {@link
     *     Granularity#PER_ROW}
     * @throws NonFiniteInputException for NaN/±Inf in x, or in y where x is finite (a non-finite
     *     P1/P2 entry or float32 overflow); on CUDA from the next call that waits for the device
     */
    public void kronQuantizeInto(Tensor x, Tensor p1, Tensor p2, float clipMax, float clipMin, QuantizedTensor out) {
        kronQuantizeInto(x, p1, p2, clipMax, clipMin, out, KronPrecision.EXACT);
    }

    /**
     * {@link #kronQuantizeInto(Tensor, Tensor, Tensor, float, float, QuantizedTensor)} with the
     * products' arithmetic chosen: {@link KronPrecision#TF32} and {@link KronPrecision#HALF} run
     * them on the GPU's tensor cores (faster, not bit-identical to the other backends; see there).
     */
    public void kronQuantizeInto(Tensor x, Tensor p1, Tensor p2, float clipMax, float clipMin, QuantizedTensor out,
            KronPrecision precision) {
        Objects.requireNonNull(precision, "precision");
        checkOwn(x, "x");
        checkKronFactor(p1, "p1");
        checkKronFactor(p2, "p2");
        Objects.requireNonNull(out, "out");
        checkOwn(out.values(), "out.values");
        checkOwn(out.scales(), "out.scales");
        if (!x.dtype().isFloat()) {
            throw new IllegalArgumentException("kronQuantize needs an F32, F16 or BF16 input, got " + x.dtype());
        }
        long n = p1.rows() * p2.rows();
        if (x.cols() != n) {
            throw new IllegalArgumentException("x has " + x.cols() + " columns but P1 ⊗ P2 is " + p1.rows() + "·"
                    + p2.rows() + " = " + n + " wide");
        }
        if (!(clipMax > 0 && clipMax <= 1) || !(clipMin > 0 && clipMin <= 1)) {
            throw new IllegalArgumentException("clip factors must be in (0, 1], got clipMax=" + clipMax + ", clipMin="
                    + clipMin);
        }
        Tensor q = out.values();
        if (out.granularity() != Granularity.PER_ROW || q.rows() != x.rows() || q.cols() != n) {
            throw new IllegalArgumentException("kronQuantize: out must be " + x.rows() + " x " + n
                    + " with PER_ROW scales, but is " + q.rows() + " x " + q.cols() + " " + out.granularity());
        }
        try (Lease l = new Lease(this, x, p1, p2, q, out.scales())) {
            Lowbit.check(LowbitNative.lowbit_kron_quantize(handle, x.handle(), x.dtype().code, x.rows(), x.ld(),
                    p1.handle(), p1.rows(), p2.handle(), p2.rows(), clipMax, clipMin, out.bits(), q.handle(), q.ld(),
                    out.scales().handle(), precision.code));
        }
    }

    private void checkKronFactor(Tensor p, String name) {
        checkOwn(p, name);
        if (p.dtype() != DType.F32 || p.rows() != p.cols() || p.ld() != p.cols()) {
            throw new IllegalArgumentException(name + " must be a dense square F32 matrix, got " + p);
        }
        if (p.rows() > KRON_MAX_FACTOR) {
            throw new IllegalArgumentException(name + " is " + p.rows() + " x " + p.cols() + "; Kronecker factors are at most "
                    + KRON_MAX_FACTOR + " x " + KRON_MAX_FACTOR);
        }
    }

    private void runQuantize(Tensor x, QuantizedTensor out, boolean scalesGiven) {
        runQuantize(x, null, out, scalesGiven);
    }

    private void runQuantize(Tensor x, ExpansionPlan plan, QuantizedTensor out, boolean scalesGiven) {
        checkOwn(x, "x");
        Objects.requireNonNull(out, "out");
        checkOwn(out.values(), "out.values");
        checkOwn(out.scales(), "out.scales");
        if (!x.dtype().isFloat()) {
            throw new IllegalArgumentException("quantize needs an F32, F16 or BF16 input, got " + x.dtype());
        }
        Tensor q = out.values();
        long outCols = plan == null ? x.cols() : plan.outCols();
        if (plan != null) {
            checkOwn(plan.sourceIndex(), "plan");
            if (plan.sourceCols() != x.cols()) {
                throw new IllegalArgumentException("the plan reads " + plan.sourceCols() + " columns but x is "
                        + x.rows() + " x " + x.cols());
            }
        }
        if (q.rows() != x.rows() || q.cols() != outCols) {
            throw new IllegalArgumentException("quantize: the output must be " + x.rows() + " x " + outCols
                    + " but is " + q.rows() + " x " + q.cols());
        }
        try (Lease l = new Lease(this, x, q, out.scales(), plan == null ? null : plan.sourceIndex(),
                plan == null ? null : plan.multiplier())) {
            if (plan == null) {
                Lowbit.check(LowbitNative.lowbit_quantize(handle, x.handle(), x.dtype().code, x.rows(), x.cols(),
                        x.ld(), out.bits(), out.granularity().code, out.group(), scalesGiven ? 1 : 0, q.handle(),
                        q.ld(), out.scales().handle()));
            } else {
                Lowbit.check(LowbitNative.lowbit_flatten_quantize(handle, x.handle(), x.dtype().code, x.rows(),
                        x.cols(), x.ld(), plan.sourceIndex().handle(), plan.multiplier().handle(), outCols,
                        plan.identityPrefix(), out.bits(), out.granularity().code, out.group(), scalesGiven ? 1 : 0, q.handle(), q.ld(),
                        out.scales().handle()));
            }
        }
    }

    // ---- GEMM ----------------------------------------------------------------------------------

    /** Exact integer product {@code a · bᵀ} as a new S32 tensor ({@code a.rows × b.rows}). */
    public Tensor gemm(Tensor a, Tensor b) {
        checkOperands(a, b);
        Tensor c = allocate(DType.S32, a.rows(), b.rows());
        try {
            gemmInto(a, b, c);
            return c;
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
    }

    /** Exact integer product {@code a · bᵀ} into the S32 tensor {@code c}. */
    public void gemmInto(Tensor a, Tensor b, Tensor c) {
        checkOperands(a, b);
        checkOwn(c, "c");
        if (c.dtype() != DType.S32) {
            throw new IllegalArgumentException("c must be S32, got " + c.dtype());
        }
        checkOutShape(c, a.rows(), b.rows());
        try (Lease l = new Lease(this, a, b, c)) {
            Lowbit.check(LowbitNative.lowbit_gemm_s32(handle, a.dtype().code, a.handle(), a.ld(), b.dtype().code,
                    b.handle(), b.ld(), a.rows(), b.rows(), a.cols(), c.handle(), c.ld()));
        }
    }

    /**
     * Quantized linear layer: {@code out = (a · bᵀ) × aScale × bScale (+ bias)} with the epilogue fused
     * into the GEMM. Both operands must have per-tensor or per-row scales (per token for {@code a},
     * per output channel for {@code b}); {@code bias} is null or an F32 tensor of {@code b.rows}
     * elements; {@code outType} is F32, F16 or BF16.
     */
    public Tensor gemm(QuantizedTensor a, QuantizedTensor b, Tensor bias, DType outType) {
        Objects.requireNonNull(a, "a");
        Objects.requireNonNull(b, "b");
        Objects.requireNonNull(outType, "outType");
        checkOperands(a.values(), b.values());
        Tensor out = allocate(outType, a.values().rows(), b.values().rows());
        try {
            gemmInto(a, b, bias, out);
            return out;
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
    }

    /** {@link #gemm(QuantizedTensor, QuantizedTensor, Tensor, DType)} into an existing output. */
    public void gemmInto(QuantizedTensor a, QuantizedTensor b, Tensor bias, Tensor out) {
        runGemm(a, b, bias, out, GEMM_AUTO);
    }

    /** What {@link #gemmConfigFor} answers when the portable kernel runs. */
    public static final String PORTABLE = "portable";
    /** The dispatch table's choice, for {@link #gemmInto(QuantizedTensor, QuantizedTensor, Tensor, Tensor, String)}. */
    public static final String AUTO = "auto";
    /**
     * The native INT4 tensor-core kernel (S4×S4; CUTLASS 2.x on {@code mma.sync.m16n8k64.s4},
     * compiled for sm_80/sm_89; on later GPUs it runs through the driver's PTX JIT): what {@link
     * #gemmConfigFor} answers where it runs, and a name for {@link #gemmInto(QuantizedTensor,
     * QuantizedTensor, Tensor, Tensor, String)}. Auto picks it on compute capability 8.x for K,
     * lda, ldb multiples of 32 and N a multiple of 4 ({@code LOWBIT_GEMM_SM80_S4} in {@code lowbit.h}).
     */
    public static final String SM80_S4 = "sm80_s4";
    /**
     * The fused 4-bit-weight kernel of sm_90 (S4 weights with S8 or S4 activations): the codes are
     * expanded to INT8 inside the wgmma mainloop, with no INT8 copy of the weights in memory. What
     * {@link #gemmConfigFor} answers where it runs (Auto picks it on an H100/H200 above M = 16 for K
     * and ldb multiples of 32, N of 8; {@code LOWBIT_GEMM_SM90_W4} in {@code lowbit.h}), and a name
     * for {@link #gemmInto(QuantizedTensor, QuantizedTensor, Tensor, Tensor, String)}.
     */
    public static final String SM90_W4 = "sm90_w4";
    private static final int GEMM_AUTO = LowbitNative.LOWBIT_GEMM_AUTO;
    private static final int GEMM_PORTABLE = LowbitNative.LOWBIT_GEMM_PORTABLE;
    private static final int GEMM_SM80_S4 = LowbitNative.LOWBIT_GEMM_SM80_S4;
    private static final int GEMM_SM90_W4 = LowbitNative.LOWBIT_GEMM_SM90_W4;

    /**
     * {@link #gemmInto(QuantizedTensor, QuantizedTensor, Tensor, Tensor)} with a chosen kernel:
     * a name from {@link Lowbit#gemmConfigs()}, {@link #AUTO}, {@link #PORTABLE}, {@link #SM80_S4} or
     * {@link #SM90_W4}.
     * A tuned configuration that cannot run the request (not an sm_90 CUDA context, not S8
     * activations with S8 or S4 weights or S4 activations with S4 weights — 4-bit operands run on
     * their expanded INT8 copies — and an F16/BF16 output, K % 16, N % 8 or the strides off the
     * alignment rules of {@code lowbit.h}), or {@link #SM80_S4} on a request it cannot run (not S4×S4
     * on a CUDA context, K or the strides not multiples of 32, N not a multiple of 4) throws {@link
     * LowbitException} with status UNSUPPORTED and the reason. For tuning and tests.
     */
    public void gemmInto(QuantizedTensor a, QuantizedTensor b, Tensor bias, Tensor out, String config) {
        Objects.requireNonNull(config, "config");
        runGemm(a, b, bias, out, configIndex(config));
    }

    /**
     * The kernel {@link #gemmInto(QuantizedTensor, QuantizedTensor, Tensor, Tensor)} runs for these
     * operands and an output of {@code outType} with dense rows: a name from {@link
     * Lowbit#gemmConfigs()}, {@link #SM80_S4}, {@link #SM90_W4} or {@link #PORTABLE}.
     */
    public String gemmConfigFor(QuantizedTensor a, QuantizedTensor b, DType outType) {
        Objects.requireNonNull(a, "a");
        Objects.requireNonNull(b, "b");
        Objects.requireNonNull(outType, "outType");
        checkOperands(a.values(), b.values());
        int[] config = new int[1];
        try (Lease l = new Lease(this, a.values(), b.values())) {
            Lowbit.check(LowbitNative.lowbit_gemm_config_select(handle, a.values().dtype().code, a.values().ld(),
                    b.values().dtype().code, b.values().ld(), a.values().rows(), b.values().rows(), a.values().cols(),
                    outType.code, b.values().rows(), config));
        }
        return configName(config[0]);
    }

    /**
     * Which machine code this context's device loaded for kernel configuration {@code config}
     * (today {@link #SM80_S4} only): loads the kernel, JIT-compiling it from PTX if the library
     * has no SASS for the device. Another configuration, or a CPU context, throws {@link
     * LowbitException} with status UNSUPPORTED.
     */
    public KernelBinary gemmKernelBinary(String config) {
        Objects.requireNonNull(config, "config");
        int index = configIndex(config);
        int[] ptx = new int[1];
        int[] sass = new int[1];
        int[] jit = new int[1];
        try (Lease l = new Lease(this)) {
            Lowbit.check(LowbitNative.lowbit_gemm_config_binary(handle, index, ptx, sass, jit));
        }
        return new KernelBinary(ptx[0], sass[0], jit[0] != 0);
    }

    /**
     * Replaces this context's GEMM dispatch table by {@code table}, the text of a tuning file as
     * {@code lowbit.bench.GemmTune} writes it (format: {@code native/src/gemm_table.h}). A
     * malformed table throws {@link LowbitException} (INVALID_ARGUMENT) naming the line; a CPU
     * context, which has no tuned kernels, UNSUPPORTED.
     */
    public void loadGemmTuning(String table) {
        Objects.requireNonNull(table, "table");
        try (Lease l = new Lease(this)) {
            Lowbit.check(LowbitNative.lowbit_gemm_tuning_load(handle, table));
        }
    }

    /**
     * Dense float GEMM {@code out = a · op(b)} ({@code accumulate}: {@code out += a · op(b)}): {@code a}
     * {@code M × K}; {@code b} {@code N × K} when {@code bTransposed} ({@code op(b) = bᵀ}, the weight
     * layout of the quantized GEMMs) or {@code K × N} otherwise; {@code out} {@code M × N}; all dense
     * and of one type, F32, F16 or BF16. Products and sums in FP32, rounded once to the type (no TF32).
     * On CUDA this is cuBLAS ({@code cublasGemmEx}, loaded at the first call: without it this throws
     * {@link LowbitException} with status UNSUPPORTED saying why): the benchmarks' same-run baseline
     * and the calibration engine's GPU products. On the CPU it is the FP64-summed reference the cuBLAS
     * path is tested against (correct, not fast).
     */
    public void denseGemm(Tensor a, Tensor b, boolean bTransposed, Tensor out, boolean accumulate) {
        checkOwn(a, "a");
        checkOwn(b, "b");
        checkOwn(out, "out");
        DType t = a.dtype();
        if (t != DType.F32 && t != DType.F16 && t != DType.BF16) {
            throw new IllegalArgumentException("the dense GEMM takes F32, F16 or BF16 tensors, got " + a);
        }
        for (Tensor x : new Tensor[] {a, b, out}) {
            if (x.dtype() != t || x.ld() != x.cols()) {
                throw new IllegalArgumentException("the dense GEMM takes dense tensors of one type (" + t + "), got " + x);
            }
        }
        long k = a.cols();
        long n = bTransposed ? b.rows() : b.cols();
        long bK = bTransposed ? b.cols() : b.rows();
        if (bK != k) {
            throw new IllegalArgumentException("K mismatch: a is " + a.rows() + " x " + a.cols() + " but b is "
                    + b.rows() + " x " + b.cols() + (bTransposed ? " (N x K)" : " (K x N)"));
        }
        checkOutShape(out, a.rows(), n);
        try (Lease l = new Lease(this, a, b, out)) {
            Lowbit.check(LowbitNative.lowbit_dense_gemm(handle, t.code, a.handle(), b.handle(),
                    bTransposed ? LowbitNative.LOWBIT_B_NK : LowbitNative.LOWBIT_B_KN, out.handle(), a.rows(), n, k,
                    accumulate ? 1 : 0));
        }
    }

    /**
     * The benchmarks' same-run baseline: {@code out = a · bᵀ} in FP16 through cuBLAS, {@code a} F16
     * {@code M × K}, {@code b} F16 {@code N × K}, {@code out} F16 {@code M × N}: {@link #denseGemm}
     * with F16 operands (on a CPU context, the reference loop).
     */
    public void baselineGemmF16(Tensor a, Tensor b, Tensor out) {
        for (Tensor t : new Tensor[] {a, b, out}) {
            if (t.dtype() != DType.F16) {
                throw new IllegalArgumentException("the FP16 baseline takes dense F16 tensors, got " + t);
            }
        }
        denseGemm(a, b, true, out, false);
    }

    private static int configIndex(String config) {
        if (config.equals(AUTO)) {
            return GEMM_AUTO;
        }
        if (config.equals(PORTABLE)) {
            return GEMM_PORTABLE;
        }
        if (config.equals(SM80_S4)) {
            return GEMM_SM80_S4;
        }
        if (config.equals(SM90_W4)) {
            return GEMM_SM90_W4;
        }
        java.util.List<String> names = Lowbit.gemmConfigs();
        int i = names.indexOf(config);
        if (i < 0) {
            throw new IllegalArgumentException("unknown GEMM configuration '" + config + "': use " + AUTO + ", "
                    + PORTABLE + ", " + SM80_S4 + ", " + SM90_W4 + " or one of " + names);
        }
        return i;
    }

    private static String configName(int config) {
        if (config == GEMM_PORTABLE) {
            return PORTABLE;
        }
        if (config == GEMM_SM80_S4) {
            return SM80_S4;
        }
        if (config == GEMM_SM90_W4) {
            return SM90_W4;
        }
        return Lowbit.gemmConfigs().get(config);
    }

    private void runGemm(QuantizedTensor a, QuantizedTensor b, Tensor bias, Tensor out, int config) {
        Objects.requireNonNull(a, "a");
        Objects.requireNonNull(b, "b");
        checkOperands(a.values(), b.values());
        checkOwn(a.scales(), "a.scales");
        checkOwn(b.scales(), "b.scales");
        checkOwn(out, "out");
        checkEpilogueScales(a, "a");
        checkEpilogueScales(b, "b");
        checkEpilogueArgs(bias, b.values().rows(), out.dtype());
        checkOutShape(out, a.values().rows(), b.values().rows());
        try (Lease l = new Lease(this, a.values(), a.scales(), b.values(), b.scales(), bias, out)) {
            Lowbit.check(LowbitNative.lowbit_gemm_dequant_config(handle, config, a.values().dtype().code,
                    a.values().handle(), a.values().ld(), b.values().dtype().code, b.values().handle(),
                    b.values().ld(), a.values().rows(), b.values().rows(), a.values().cols(), a.scales().handle(),
                    a.scales().elementCount(), b.scales().handle(), b.scales().elementCount(),
                    bias == null ? null : bias.handle(), out.dtype().code, out.handle(), out.ld()));
        }
    }

    /**
     * The epilogue alone on an S32 accumulator: {@code out[i][j] = acc[i][j] × aScales[i or 0] ×
     * bScales[j or 0] (+ bias[j])}.
     */
    public Tensor dequantize(Tensor acc, Tensor aScales, Tensor bScales, Tensor bias, DType outType) {
        checkOwn(acc, "acc");
        Objects.requireNonNull(outType, "outType");
        Tensor out = allocate(outType, acc.rows(), acc.cols());
        try {
            dequantizeInto(acc, aScales, bScales, bias, out);
            return out;
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
    }

    /** {@link #dequantize} into an existing output. */
    public void dequantizeInto(Tensor acc, Tensor aScales, Tensor bScales, Tensor bias, Tensor out) {
        checkOwn(acc, "acc");
        checkOwn(aScales, "aScales");
        checkOwn(bScales, "bScales");
        checkOwn(out, "out");
        if (acc.dtype() != DType.S32) {
            throw new IllegalArgumentException("acc must be S32, got " + acc.dtype());
        }
        checkScaleVector(aScales, acc.rows(), "aScales", "M");
        checkScaleVector(bScales, acc.cols(), "bScales", "N");
        checkEpilogueArgs(bias, acc.cols(), out.dtype());
        checkOutShape(out, acc.rows(), acc.cols());
        try (Lease l = new Lease(this, acc, aScales, bScales, bias, out)) {
            Lowbit.check(LowbitNative.lowbit_dequantize_s32(handle, acc.handle(), acc.rows(), acc.cols(), acc.ld(),
                    aScales.handle(), aScales.elementCount(), bScales.handle(), bScales.elementCount(),
                    bias == null ? null : bias.handle(), out.dtype().code, out.handle(), out.ld()));
        }
    }

    // ---- DGQ (A8W4 with integer group scales) ----------------------------------------------------

    /**
     * Uploads DGQ weights ({@code n × k}, groups of {@code group} columns) and checks them ({@code
     * lowbit_dgq_check}): {@code packedCodes} holds {@code n} rows of {@code ceil(k/2)} bytes (element
     * c in byte c/2, low nibble first; signed INT4 when {@code zeroPoints} is null, else unsigned
     * 0..15); {@code groupScales} the {@code n × k/group} unsigned scales S2 (bytes read as 0..255,
     * each ≥ 1); {@code zeroPoints} null or {@code n × k/group} INT8 zero points; {@code
     * channelScales} {@code n} finite floats. A group whose {@code |W8|} exceeds 127 throws {@link
     * LowbitException} (INVALID_ARGUMENT) naming its row, group and column.
     */
    public DgqWeights uploadDgq(byte[] packedCodes, byte[] groupScales, byte[] zeroPoints, float[] channelScales,
                                int n, int k, int group) {
        Objects.requireNonNull(packedCodes, "packedCodes");
        Objects.requireNonNull(groupScales, "groupScales");
        Objects.requireNonNull(channelScales, "channelScales");
        if (n <= 0 || k <= 0) {
            throw new IllegalArgumentException("DGQ weights need positive dimensions, got " + n + " x " + k);
        }
        if (group <= 0 || k % group != 0) {
            throw new IllegalArgumentException("group size " + group + " does not divide K=" + k);
        }
        long groups = (long) n * (k / group);
        if (groupScales.length != groups || (zeroPoints != null && zeroPoints.length != groups)) {
            throw new IllegalArgumentException("DGQ " + n + " x " + k + " weights with G=" + group + " need " + groups
                    + " group scales" + (zeroPoints == null ? "" : " and zero points") + ", got " + groupScales.length
                    + (zeroPoints == null ? "" : " and " + zeroPoints.length));
        }
        if (channelScales.length != n) {
            throw new IllegalArgumentException("DGQ weights need N=" + n + " channel scales, got " + channelScales.length);
        }
        for (int j = 0; j < n; j++) {
            if (!Float.isFinite(channelScales[j])) {
                throw new IllegalArgumentException("channel scale " + j + " is not finite: " + channelScales[j]);
            }
        }
        java.util.List<Tensor> made = new java.util.ArrayList<>();
        try {
            Tensor codes = track(made, upload(packedCodes, DType.S4, n, k));
            Tensor scales = track(made, upload(groupScales, DType.S8, n, k / group));
            Tensor zeros = zeroPoints == null ? null : track(made, upload(zeroPoints, DType.S8, n, k / group));
            Tensor channel = track(made, upload(channelScales, 1, n));
            try (Lease l = new Lease(this, codes, scales, zeros)) {
                Lowbit.check(LowbitNative.lowbit_dgq_check(handle, codes.handle(), codes.ld(), scales.handle(),
                        zeros == null ? null : zeros.handle(), group, n, k));
            }
            return new DgqWeights(codes, scales, zeros, channel, group);
        } catch (RuntimeException e) {
            made.forEach(Tensor::close);
            throw e;
        }
    }

    private static Tensor track(java.util.List<Tensor> made, Tensor t) {
        made.add(t);
        return t;
    }

    /**
     * The DGQ A8W4 linear layer: {@code out = (a · W8ᵀ) × aScale × channelScale (+ bias)}, the
     * weights expanded to INT8 inside the kernel. {@code a} is S8 with per-tensor or per-row (per
     * token) scales; {@code bias} null or F32 of {@code w.rows()} elements; {@code outType} F32, F16
     * or BF16. CPU and CUDA backends.
     */
    public Tensor gemmDgq(QuantizedTensor a, DgqWeights w, Tensor bias, DType outType) {
        Objects.requireNonNull(a, "a");
        Objects.requireNonNull(w, "w");
        Objects.requireNonNull(outType, "outType");
        Tensor out = allocate(outType, a.values().rows(), w.rows());
        try {
            gemmDgqInto(a, w, bias, out);
            return out;
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
    }

    /** {@link #gemmDgq} into an existing output. */
    public void gemmDgqInto(QuantizedTensor a, DgqWeights w, Tensor bias, Tensor out) {
        Objects.requireNonNull(a, "a");
        Objects.requireNonNull(w, "w");
        checkOwn(a.values(), "a");
        checkOwn(a.scales(), "a.scales");
        checkOwn(w.codes(), "w");
        checkOwn(out, "out");
        if (a.values().dtype() != DType.S8) {
            throw new IllegalArgumentException("the DGQ GEMM needs S8 activations, got " + a.values().dtype());
        }
        if (a.values().cols() != w.cols()) {
            throw new IllegalArgumentException("K mismatch: a is " + a.values().rows() + " x " + a.values().cols()
                    + " but the DGQ weights are " + w.rows() + " x " + w.cols());
        }
        checkEpilogueScales(a, "a");
        checkEpilogueArgs(bias, w.rows(), out.dtype());
        checkOutShape(out, a.values().rows(), w.rows());
        try (Lease l = new Lease(this, a.values(), a.scales(), w.codes(), w.groupScales(), w.zeroPoints(),
                w.channelScales(), bias, out)) {
            Lowbit.check(LowbitNative.lowbit_gemm_dgq(handle, a.values().handle(), a.values().ld(), w.codes().handle(),
                    w.codes().ld(), w.groupScales().handle(), w.zeroPoints() == null ? null : w.zeroPoints().handle(),
                    w.group(), a.values().rows(), w.rows(), w.cols(), a.scales().handle(), a.scales().elementCount(),
                    w.channelScales().handle(), bias == null ? null : bias.handle(), out.dtype().code, out.handle(),
                    out.ld()));
        }
    }

    // ---- bit planes (ABQ-LLM: any-bit GEMMs as binary plane products) ----------------------------

    /**
     * Uploads an operand packed offline from integer codes ({@link BitPlanes#pack}): {@code codes} is
     * {@code rows × cols} row-major in the {@code bits}-bit signed or unsigned range; {@code
     * zeroPoints} null or one per row (the operand's integer is {@code code − z}); {@code scales} one
     * finite value per row or a single one. Weights use this (one output channel per row).
     */
    public BitPlaneTensor uploadBitPlanes(int[] codes, int rows, int cols, int bits, boolean signed, int[] zeroPoints,
                                          float[] scales) {
        Objects.requireNonNull(codes, "codes");
        Objects.requireNonNull(scales, "scales");
        int[] words = BitPlanes.pack(codes, rows, cols, bits, signed);
        if (zeroPoints != null && zeroPoints.length != rows) {
            throw new IllegalArgumentException("zero points: need " + rows + " (one per row), got " + zeroPoints.length);
        }
        if (scales.length != 1 && scales.length != rows) {
            throw new IllegalArgumentException("scales: need 1 or " + rows + " (one per row), got " + scales.length);
        }
        for (int i = 0; i < scales.length; i++) {
            if (!Float.isFinite(scales[i])) {
                throw new IllegalArgumentException("scale " + i + " is not finite: " + scales[i]);
            }
        }
        int[] sums = BitPlanes.rowSums(codes, rows, cols);
        java.util.List<Tensor> made = new java.util.ArrayList<>();
        try {
            Tensor planes = track(made, allocate(DType.S32, rows, 2L * bits * BitPlanes.ld(cols)));
            planes.copyFrom(words);
            Tensor sumT = track(made, allocate(DType.S32, 1, rows));
            sumT.copyFrom(sums);
            Tensor zeroT = null;
            if (zeroPoints != null) {
                zeroT = track(made, allocate(DType.S32, 1, rows));
                zeroT.copyFrom(zeroPoints);
            }
            Tensor scaleT = track(made, upload(scales, 1, scales.length));
            return new BitPlaneTensor(planes, sumT, zeroT, scaleT, bits, signed, rows, cols);
        } catch (RuntimeException e) {
            made.forEach(Tensor::close);
            throw e;
        }
    }

    /**
     * Storage for per-token bit-plane activations: {@code bits} planes, unsigned codes with zero
     * points when {@code asymmetric} (bits 1..8), two's-complement codes otherwise (bits 2..8).
     */
    public BitPlaneTensor allocateBitPlanes(long rows, long cols, int bits, boolean asymmetric) {
        checkActivationBits(bits, asymmetric);
        if (rows <= 0) {
            throw new IllegalArgumentException("rows must be positive, got " + rows);
        }
        int ld = BitPlanes.ld(cols);
        java.util.List<Tensor> made = new java.util.ArrayList<>();
        try {
            Tensor planes = track(made, allocate(DType.S32, rows, 2L * bits * ld));
            Tensor sums = track(made, allocate(DType.S32, 1, rows));
            Tensor zeros = asymmetric ? track(made, allocate(DType.S32, 1, rows)) : null;
            Tensor scales = track(made, allocate(DType.F32, 1, rows));
            return new BitPlaneTensor(planes, sums, zeros, scales, bits, !asymmetric, rows, cols);
        } catch (RuntimeException e) {
            made.forEach(Tensor::close);
            throw e;
        }
    }

    private static void checkActivationBits(int bits, boolean asymmetric) {
        int lo = asymmetric ? 1 : 2;
        if (bits < lo || bits > 8) {
            throw new IllegalArgumentException((asymmetric ? "asymmetric" : "symmetric") + " bit-plane quantization needs "
                    + lo + "..8 bits, got " + bits);
        }
    }

    /**
     * Per-token dynamic quantization of {@code x} (F32/F16/BF16) to bit planes; the numerics are
     * {@code lowbit_bitplane_quantize}'s (asymmetric: scale = (max(0,max x) − min(0,min x))/(2^bits−1)
     * with an integer zero point; symmetric: amax/(2^(bits−1)−1)).
     */
    public BitPlaneTensor quantizeBitPlanes(Tensor x, int bits, boolean asymmetric) {
        checkOwn(x, "x");
        BitPlaneTensor out = allocateBitPlanes(x.rows(), x.cols(), bits, asymmetric);
        try {
            quantizeBitPlanesInto(x, out);
            return out;
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
    }

    /** {@link #quantizeBitPlanes} into storage from {@link #allocateBitPlanes} of the same shape. */
    public void quantizeBitPlanesInto(Tensor x, BitPlaneTensor out) {
        checkOwn(x, "x");
        Objects.requireNonNull(out, "out");
        checkBitPlanes(out, "out");
        if (!x.dtype().isFloat()) {
            throw new IllegalArgumentException("quantize needs an F32, F16 or BF16 input, got " + x.dtype());
        }
        if (out.rows() != x.rows() || out.cols() != x.cols()) {
            throw new IllegalArgumentException("bit-plane output is " + out.rows() + " x " + out.cols() + " but x is "
                    + x.rows() + " x " + x.cols());
        }
        boolean asymmetric = out.hasZeroPoints();
        if (out.isSigned() == asymmetric || out.scales().elementCount() != out.rows()) {
            throw new IllegalArgumentException("out must come from allocateBitPlanes (per-row scales; unsigned codes "
                    + "with zero points, or signed codes without), got " + out);
        }
        checkActivationBits(out.bits(), asymmetric);
        try (Lease l = new Lease(this, x, out.planes(), out.scales(), out.zeroPoints(), out.sums())) {
            Lowbit.check(LowbitNative.lowbit_bitplane_quantize(handle, x.handle(), x.dtype().code, x.rows(), x.cols(),
                    x.ld(), out.bits(), asymmetric ? 1 : 0, out.planes().handle(), out.ld(), out.scales().handle(),
                    asymmetric ? out.zeroPoints().handle() : null, out.sums().handle()));
        }
    }

    /**
     * The bit-plane linear layer {@code out = acc × xScale × wScale (+ bias)} with the exact integer
     * {@code acc[i][j] = Σ_c (x[i][c] − zx[i])·(w[j][c] − zw[j])} computed from plane-pair popcounts
     * ({@code lowbit_bitplane_gemm}). {@code x}: activations (M rows), {@code w}: weights (N rows),
     * same column count; {@code bias} null or F32 of N elements; {@code outType} F32/F16/BF16.
     */
    public Tensor gemmBitPlanes(BitPlaneTensor x, BitPlaneTensor w, Tensor bias, DType outType) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(w, "w");
        Objects.requireNonNull(outType, "outType");
        if (!outType.isFloat()) {
            throw new IllegalArgumentException("output dtype must be F32, F16 or BF16 (S32 through gemmBitPlanesInto), got "
                    + outType);
        }
        Tensor out = allocate(outType, x.rows(), w.rows());
        try {
            gemmBitPlanesInto(x, w, bias, out);
            return out;
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
    }

    /**
     * {@link #gemmBitPlanes} into an existing output; an S32 {@code out} receives the raw accumulator
     * (its low 32 bits; exact while |acc| < 2^31), scales and bias unused.
     */
    public void gemmBitPlanesInto(BitPlaneTensor x, BitPlaneTensor w, Tensor bias, Tensor out) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(w, "w");
        checkBitPlanes(x, "x");
        checkBitPlanes(w, "w");
        checkOwn(out, "out");
        if (x.cols() != w.cols()) {
            throw new IllegalArgumentException("K mismatch: x is " + x.rows() + " x " + x.cols() + " but w is " + w.rows()
                    + " x " + w.cols());
        }
        boolean raw = out.dtype() == DType.S32;
        if (!raw) {
            checkEpilogueArgs(bias, w.rows(), out.dtype());
        }
        checkOutShape(out, x.rows(), w.rows());
        try (Lease l = new Lease(this, x.planes(), x.sums(), x.zeroPoints(), x.scales(), w.planes(), w.sums(),
                w.zeroPoints(), w.scales(), raw ? null : bias, out)) {
            Lowbit.check(LowbitNative.lowbit_bitplane_gemm(handle, x.planes().handle(), x.bits(), x.isSigned() ? 1 : 0,
                    x.ld(), x.hasZeroPoints() ? x.zeroPoints().handle() : null, x.sums().handle(), w.planes().handle(),
                    w.bits(), w.isSigned() ? 1 : 0, w.ld(), w.hasZeroPoints() ? w.zeroPoints().handle() : null,
                    w.sums().handle(), x.rows(), w.rows(), x.cols(), x.scales().handle(), x.scales().elementCount(),
                    w.scales().handle(), w.scales().elementCount(), raw || bias == null ? null : bias.handle(),
                    out.dtype().code, out.handle(), out.ld()));
        }
    }

    private void checkBitPlanes(BitPlaneTensor t, String name) {
        checkOwn(t.planes(), name + ".planes");
        checkOwn(t.sums(), name + ".sums");
        checkOwn(t.scales(), name + ".scales");
        if (t.hasZeroPoints()) {
            checkOwn(t.zeroPoints(), name + ".zeroPoints");
        }
    }

    @Override
    public String toString() {
        return description() + (isClosed() ? " (closed)" : "");
    }

    // ---- argument checks -----------------------------------------------------------------------

    private void checkOwn(Tensor t, String name) {
        Objects.requireNonNull(t, name);
        if (t.context() != this) {
            throw new IllegalArgumentException(name + " belongs to another context (" + t.context() + ")");
        }
        if (t.isClosed()) {
            throw new IllegalStateException(name + " (" + t.description() + ") is closed");
        }
    }

    private void checkOperands(Tensor a, Tensor b) {
        checkOwn(a, "a");
        checkOwn(b, "b");
        boolean ok = (a.dtype() == DType.S8 && (b.dtype() == DType.S8 || b.dtype() == DType.S4))
                || (a.dtype() == DType.S4 && b.dtype() == DType.S4);
        if (!ok) {
            throw new IllegalArgumentException(
                    "unsupported GEMM operands " + a.dtype() + " x " + b.dtype() + ": use S8xS8, S8xS4 or S4xS4");
        }
        if (a.cols() != b.cols()) {
            throw new IllegalArgumentException("K mismatch: a is " + a.rows() + " x " + a.cols() + " but b is "
                    + b.rows() + " x " + b.cols() + " (C = a · bᵀ needs equal column counts)");
        }
    }

    private static void checkOutShape(Tensor out, long m, long n) {
        if (out.rows() != m || out.cols() != n) {
            throw new IllegalArgumentException(
                    "output is " + out.rows() + " x " + out.cols() + " but the product is " + m + " x " + n);
        }
    }

    private static void checkEpilogueScales(QuantizedTensor q, String name) {
        if (q.granularity() != Granularity.PER_TENSOR && q.granularity() != Granularity.PER_ROW) {
            throw new IllegalArgumentException("the GEMM epilogue needs per-tensor or per-row scales; " + name
                    + " has " + q.granularity());
        }
    }

    private void checkScaleVector(Tensor s, long count, String name, String dim) {
        if (s.dtype() != DType.F32 || (s.elementCount() != 1 && s.elementCount() != count)) {
            throw new IllegalArgumentException(
                    name + " must be F32 with 1 or " + dim + "=" + count + " elements, got " + s);
        }
    }

    private void checkEpilogueArgs(Tensor bias, long n, DType outType) {
        if (!outType.isFloat()) {
            throw new IllegalArgumentException("output dtype must be F32, F16 or BF16, got " + outType);
        }
        if (bias != null) {
            checkOwn(bias, "bias");
            if (bias.dtype() != DType.F32 || bias.elementCount() != n) {
                throw new IllegalArgumentException("bias must be F32 with N=" + n + " elements, got " + bias);
            }
        }
    }
}
