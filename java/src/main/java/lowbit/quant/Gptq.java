package lowbit.quant;

import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * GPTQ weight quantization (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for
 * Generative Pre-trained Transformers"; the reference {@code GPTQ.fasterquant} that QuaRot and
 * FlatQuant run with {@code --gptq}), in FP64, onto a symmetric per-row grid whose scales are given.
 *
 * <p>For a layer {@code y = x·Wᵀ} ({@code W}: rows = output channels, cols = {@code K} inputs) and
 * calibration inputs {@code X} ({@code tokens × K}), GPTQ minimizes {@code ‖X·Wᵀ − X·Qᵀ‖²} one
 * input column at a time: column {@code i} is rounded ({@code q = clamp(rint(w / s_r))}, {@code s_r}
 * the row's scale, grid {@code −2^(b−1) .. 2^(b−1)−1}) and its rounding error, divided by {@code
 * U[i][i]}, is pushed onto the columns not yet rounded with the weights {@code U[i][k]} ({@code k >
 * i}), where {@code U} is the upper Cholesky factor of {@code H⁻¹} ({@code H⁻¹ = Uᵀ·U}) and {@code H =
 * XᵀX}. Details as the reference:
 *
 * <ul>
 *   <li>dead inputs ({@code H[j][j] = 0}: channel {@code j} is zero on every token) get {@code
 *       H[j][j] = 1} and their weight column is zeroed (code 0);
 *   <li>dampening: {@code λ = damping · mean(diag H)} is added to the diagonal ({@code percdamp},
 *       default 0.01); a Hessian still not positive definite is an error;
 *   <li>act-order (optional, off by default): columns are processed by descending {@code H[j][j]}
 *       (stable for ties), the codes returned in the original order;
 *   <li>lazy block updates: within a block of {@code blockSize} columns the error goes to the block's
 *       columns at once; the columns after the block receive the block's errors only when the block
 *       is done. The rows of {@code W} are independent (each row's update uses that row's errors
 *       only), so this runs row by row (rows in parallel), and for each trailing column {@code k} it
 *       applies {@code x[k] −= e_i·U[i][k]} for {@code i} ascending: exactly the operations, in the
 *       same order, of the plain column loop, so the result equals the unblocked loop bit for bit.
 * </ul>
 *
 * The scale of {@code H} does not matter ({@code λ} scales with it and {@code e_i·U[i][k]} is
 * invariant), so {@link #hessian} accumulates the plain {@code XᵀX} (the reference's {@code 2/N}
 * factor cancels).
 */
public final class Gptq {
    /** The reference's {@code percdamp}: the diagonal dampening as a fraction of the mean diagonal. */
    public static final double DEFAULT_DAMPING = 0.01;
    /** The reference's lazy-update block size. */
    public static final int DEFAULT_BLOCK = 128;

    /** Rows processed together, so each row of {@code U} is read once per tile from cache. */
    private static final int ROW_TILE = 8;
    /** Tokens converted to FP64 together while accumulating the Hessian. */
    private static final int TOKEN_TILE = 32;

    private Gptq() {}

    /**
     * The GPTQ settings: {@code damping} in (0, 1] (the reference's {@code percdamp}), {@code
     * blockSize} ≥ 1, {@code actOrder} (process columns by descending Hessian diagonal).
     */
    public record Options(double damping, int blockSize, boolean actOrder) {
        public Options {
            if (!(damping > 0 && damping <= 1)) throw new IllegalArgumentException("GPTQ dampening must be in (0, 1], got " + damping);
            if (blockSize < 1) throw new IllegalArgumentException("GPTQ block size must be >= 1, got " + blockSize);
        }

        /** The reference defaults: dampening 0.01, block 128, no act-order. */
        public static Options defaults() {
            return new Options(DEFAULT_DAMPING, DEFAULT_BLOCK, false);
        }

        public Options withActOrder(boolean on) {
            return new Options(damping, blockSize, on);
        }

        public Options withBlockSize(int size) {
            return new Options(damping, size, actOrder);
        }
    }

    /**
     * {@code XᵀX} ({@code k × k}, row-major, symmetric) of {@code tokens} rows of {@code x} ({@code
     * tokens × k}, row-major float32), summed in FP64 with tokens in ascending order (deterministic).
     */
    public static double[] hessian(float[] x, int tokens, int k) {
        double[] h = new double[k * k];
        accumulate(h, x, tokens, k);
        symmetrize(h, k);
        return h;
    }

    /**
     * Adds {@code tokens} rows of {@code x} ({@code tokens × k}) to the upper triangle of {@code h}
     * ({@code k × k}): {@code H[i][j] += Σ_t x[t][i]·x[t][j]} for {@code j ≥ i}, each sum in token
     * order (deterministic); for Hessians gathered batch by batch. {@link #symmetrize} completes it.
     */
    public static void accumulate(double[] h, float[] x, int tokens, int k) {
        if (x == null) throw new IllegalArgumentException("GPTQ Hessian: no inputs given");
        if (tokens < 1 || k < 1) throw new ShapeMismatchException("GPTQ Hessian needs >= 1 token of >= 1 channel, got " + tokens + " x " + k);
        if (x.length < (long) tokens * k) throw new ShapeMismatchException("GPTQ Hessian: " + tokens + " x " + k + " inputs need " + (long) tokens * k + " values, got " + x.length);
        if (h == null || h.length != (long) k * k) throw new ShapeMismatchException("GPTQ Hessian must be " + k + " x " + k + ", got " + (h == null ? "none" : h.length + " values"));
        double[] tile = new double[TOKEN_TILE * k];
        for (int t0 = 0; t0 < tokens; t0 += TOKEN_TILE) {
            int nt = Math.min(TOKEN_TILE, tokens - t0);
            for (int i = 0; i < nt * k; i++) {
                float v = x[t0 * k + i];
                if (!Float.isFinite(v)) throw new NonFiniteValueException("GPTQ Hessian: input " + v + " at token " + (t0 + i / k) + ", channel " + i % k + " is not finite");
                tile[i] = v;
            }
            // upper triangle, row i: H[i][j] += x[t][i]·x[t][j] for j >= i (each element's sum in token order)
            IntStream rows = IntStream.range(0, k);
            (k >= 64 ? rows.parallel() : rows).forEach(i -> {
                int row = i * k;
                for (int t = 0; t < nt; t++) {
                    double xi = tile[t * k + i];
                    if (xi == 0) continue;
                    int at = t * k;
                    for (int j = i; j < k; j++) h[row + j] += xi * tile[at + j];
                }
            });
        }
    }

    /** Copies the upper triangle of {@code h} ({@code k × k}) into the lower one. */
    public static void symmetrize(double[] h, int k) {
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < i; j++) h[i * k + j] = h[j * k + i];
        }
    }

    /**
     * The grid GPTQ rounds onto, row by row: {@code code(row, v)} is the round-to-nearest code of
     * value {@code v} in row {@code row}, {@code value(row, code)} the value that code stands for
     * (for a symmetric grid {@code code · s_row}; with zero points {@code (code − z_row) · s_row}).
     */
    public interface RowGrid {
        int code(int row, double v);

        double value(int row, int code);
    }

    /**
     * GPTQ codes of {@code w} ({@code rows × cols}, row-major) on the grid {@code −2^(bits−1) ..
     * 2^(bits−1)−1} with one {@code scales[r]} per row (code {@code clamp(rint(w / s))}, value {@code
     * code · s}), minimizing the output error on inputs whose Hessian is {@code h} ({@code cols ×
     * cols}, symmetric, e.g. {@link #hessian}; its upper triangle is used). Inputs are not modified.
     */
    public static int[] quantize(double[] w, int rows, int cols, double[] h, double[] scales, int bits, Options options) {
        if (bits < 2 || bits > 8) throw new IllegalArgumentException("GPTQ grids of 2..8 bits, got " + bits);
        if (scales == null || scales.length != rows) throw new ShapeMismatchException("GPTQ needs one scale per row (" + rows + "), got " + (scales == null ? "none" : scales.length));
        for (int r = 0; r < rows; r++) {
            if (!(scales[r] > 0 && Double.isFinite(scales[r]))) throw new IllegalArgumentException("GPTQ scale " + scales[r] + " of row " + r + " must be finite and > 0");
        }
        return quantize(w, rows, cols, h, symmetricGrid(scales, bits), options);
    }

    /** The symmetric grid {@code clamp(rint(v / s_row), −2^(bits−1), 2^(bits−1)−1)}, value {@code code · s_row}. */
    static RowGrid symmetricGrid(double[] scales, int bits) {
        int qmax = (1 << (bits - 1)) - 1, qmin = -qmax - 1;
        return new RowGrid() {
            @Override
            public int code(int row, double v) {
                return (int) Math.max(qmin, Math.min(qmax, Math.rint(v / scales[row])));
            }

            @Override
            public double value(int row, int code) {
                return code * scales[row];
            }
        };
    }

    /**
     * GPTQ codes of {@code w} ({@code rows × cols}, row-major) on {@code grid}, minimizing the output
     * error on inputs whose Hessian is {@code h} ({@code cols × cols}, symmetric). Inputs are not
     * modified; the codes are returned in {@code w}'s order (act-order permutes only internally).
     */
    public static int[] quantize(double[] w, int rows, int cols, double[] h, RowGrid grid, Options options) {
        if (grid == null) throw new IllegalArgumentException("GPTQ needs a grid to round onto");
        check(w, rows, cols, h, options);
        int n = cols;
        double[] hw = h.clone();
        double[] ww = w.clone();
        for (int j = 0; j < n; j++) {
            if (hw[j * n + j] == 0) { // dead input: the reference's H[dead, dead] = 1, W[:, dead] = 0
                hw[j * n + j] = 1;
                for (int r = 0; r < rows; r++) ww[r * n + j] = 0;
            }
        }
        int[] order = options.actOrder() ? descendingDiagonal(hw, n) : null;
        if (order != null) {
            hw = permuteSymmetric(hw, n, order);
            ww = permuteColumns(ww, rows, n, order);
        }
        double mean = 0;
        for (int j = 0; j < n; j++) mean += hw[j * n + j];
        double damp = options.damping() * mean / n;
        for (int j = 0; j < n; j++) hw[j * n + j] += damp;
        double[] u = inverseCholeskyUpper(hw, n);
        int[] q = columnLoop(ww, rows, n, u, grid, options.blockSize());
        if (order == null) return q;
        int[] back = new int[q.length];
        for (int r = 0; r < rows; r++) {
            for (int p = 0; p < n; p++) back[r * n + order[p]] = q[r * n + p];
        }
        return back;
    }

    private static void check(double[] w, int rows, int cols, double[] h, Options options) {
        if (options == null) throw new IllegalArgumentException("GPTQ options are required (Options.defaults())");
        if (rows < 1 || cols < 1) throw new ShapeMismatchException("GPTQ weights must be at least 1 x 1, got " + rows + " x " + cols);
        if (w == null || w.length != (long) rows * cols) {
            throw new ShapeMismatchException("GPTQ weights must be " + rows + " x " + cols + " = " + (long) rows * cols + " values, got " + (w == null ? "none" : w.length));
        }
        if (h == null || h.length != (long) cols * cols) {
            throw new ShapeMismatchException("GPTQ Hessian must be " + cols + " x " + cols + " (the weight's input width), got " + (h == null ? "none" : h.length + " values"));
        }
        for (int i = 0; i < w.length; i++) {
            if (!Double.isFinite(w[i])) throw new NonFiniteValueException("GPTQ weight " + w[i] + " at row " + i / cols + ", column " + i % cols + " is not finite");
        }
        for (int i = 0; i < h.length; i++) {
            if (!Double.isFinite(h[i])) throw new NonFiniteValueException("GPTQ Hessian entry " + h[i] + " at (" + i / cols + ", " + i % cols + ") is not finite");
        }
        for (int j = 0; j < cols; j++) {
            if (h[j * cols + j] < 0) throw new IllegalArgumentException("GPTQ Hessian diagonal " + h[j * cols + j] + " at " + j + " is negative: not a Gram matrix XᵀX");
            for (int i = 0; i < j; i++) { // symmetric up to rounding: |H[i][j] − H[j][i]| ≤ 1e-9·sqrt(H[i][i]·H[j][j])
                if (Math.abs(h[i * cols + j] - h[j * cols + i]) > 1e-9 * Math.sqrt(Math.abs(h[i * cols + i] * h[j * cols + j]))) {
                    throw new IllegalArgumentException("GPTQ Hessian is not symmetric at (" + i + ", " + j + "): " + h[i * cols + j] + " vs " + h[j * cols + i]);
                }
            }
        }
    }

    /** Column indices by descending diagonal, ties in index order (the permutation {@code perm[p]} = original column). */
    private static int[] descendingDiagonal(double[] h, int n) {
        Integer[] idx = new Integer[n];
        for (int i = 0; i < n; i++) idx[i] = i;
        Arrays.sort(idx, (a, b) -> Double.compare(h[b * n + b], h[a * n + a])); // stable merge sort
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = idx[i];
        return p;
    }

    private static double[] permuteSymmetric(double[] h, int n, int[] p) {
        double[] y = new double[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) y[i * n + j] = h[p[i] * n + p[j]];
        }
        return y;
    }

    private static double[] permuteColumns(double[] w, int rows, int n, int[] p) {
        double[] y = new double[w.length];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < n; j++) y[r * n + j] = w[r * n + p[j]];
        }
        return y;
    }

    /**
     * The upper-triangular {@code U} with positive diagonal and {@code Uᵀ·U = H⁻¹} (the reference's
     * {@code cholesky(cholesky_inverse(cholesky(H)), upper=True)}), computed with one factorization
     * and one triangular inverse: with {@code R} the index reversal, the lower Cholesky factor {@code
     * L} of {@code R·H·R} gives {@code H = V·Vᵀ} with {@code V = R·L·R} upper triangular, so {@code H⁻¹
     * = V⁻ᵀ·V⁻¹} and {@code U = V⁻¹ = R·L⁻¹·R} (the factor is unique). Throws when {@code H} is not
     * positive definite.
     */
    static double[] inverseCholeskyUpper(double[] h, int n) {
        double[] a = new double[n * n]; // R·H·R
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) a[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
        }
        double[] l = cholesky(a, n);
        double[] x = lowerInverse(l, n);
        double[] u = new double[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = i; j < n; j++) u[i * n + j] = x[(n - 1 - i) * n + (n - 1 - j)];
        }
        return u;
    }

    /** Lower Cholesky factor of the symmetric {@code a} (row-major; column by column, the rows below the diagonal in parallel). */
    private static double[] cholesky(double[] a, int n) {
        double[] l = new double[n * n];
        for (int j = 0; j < n; j++) {
            int rj = j * n;
            double d = a[rj + j];
            for (int k = 0; k < j; k++) d -= l[rj + k] * l[rj + k];
            if (!(d > 0)) {
                throw new IllegalArgumentException("GPTQ: the dampened Hessian is not positive definite (pivot " + d + " at column " + j
                        + " of " + n + "); the calibration inputs are degenerate or the dampening too small");
            }
            double djj = Math.sqrt(d);
            l[rj + j] = djj;
            final int col = j;
            IntStream below = IntStream.range(j + 1, n);
            ((n - j) * (long) j >= 1 << 14 ? below.parallel() : below).forEach(i -> {
                int ri = i * n;
                double s = a[ri + col];
                for (int k = 0; k < col; k++) s -= l[ri + k] * l[rj + k];
                l[ri + col] = s / djj;
            });
        }
        return l;
    }

    /** {@code L⁻¹} of a lower-triangular {@code l}: column {@code j} by forward substitution, columns in parallel. */
    private static double[] lowerInverse(double[] l, int n) {
        double[] x = new double[n * n];
        IntStream cols = IntStream.range(0, n);
        (n >= 64 ? cols.parallel() : cols).forEach(j -> {
            double[] c = new double[n]; // column j of L⁻¹; zero above row j
            c[j] = 1 / l[j * n + j];
            for (int i = j + 1; i < n; i++) {
                int ri = i * n;
                double s = 0;
                for (int k = j; k < i; k++) s += l[ri + k] * c[k];
                c[i] = -s / l[ri + i];
            }
            for (int i = j; i < n; i++) x[i * n + j] = c[i];
        });
        return x;
    }

    /**
     * The column loop with lazy block updates on {@code w} (already dead-zeroed and permuted), given
     * {@code U}; rows in tiles of {@link #ROW_TILE}, tiles in parallel. Package-private for tests.
     */
    static int[] columnLoop(double[] w, int rows, int n, double[] u, RowGrid grid, int blockSize) {
        int[] q = new int[rows * n];
        int tiles = (rows + ROW_TILE - 1) / ROW_TILE;
        IntStream all = IntStream.range(0, tiles);
        (tiles > 1 && (long) rows * n * n >= 1 << 16 ? all.parallel() : all).forEach(tile -> {
            int r0 = tile * ROW_TILE, nr = Math.min(ROW_TILE, rows - r0);
            double[] x = Arrays.copyOfRange(w, r0 * n, (r0 + nr) * n); // the tile's rows, updated in place
            double[] err = new double[nr * blockSize];
            for (int i1 = 0; i1 < n; i1 += blockSize) {
                int i2 = Math.min(i1 + blockSize, n);
                for (int i = i1; i < i2; i++) {
                    int ui = i * n;
                    double d = u[ui + i];
                    for (int r = 0; r < nr; r++) {
                        int at = r * n;
                        double v = x[at + i];
                        int code = grid.code(r0 + r, v);
                        q[(r0 + r) * n + i] = code;
                        double e = (v - grid.value(r0 + r, code)) / d;
                        err[r * blockSize + i - i1] = e;
                        for (int k = i + 1; k < i2; k++) x[at + k] -= e * u[ui + k]; // inside the block: at once
                    }
                }
                for (int i = i1; i < i2; i++) { // after the block: the block's errors, column i ascending
                    int ui = i * n;
                    for (int r = 0; r < nr; r++) {
                        int at = r * n;
                        double e = err[r * blockSize + i - i1];
                        for (int k = i2; k < n; k++) x[at + k] -= e * u[ui + k];
                    }
                }
            }
        });
        return q;
    }
}
