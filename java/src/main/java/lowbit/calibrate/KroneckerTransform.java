package lowbit.calibrate;

import java.util.ArrayList;
import java.util.List;

/**
 * FlatQuant's learnable invertible transform of a linear layer's input, {@code P = P1 ⊗ P2} with
 * each factor an {@link AffineFactor}: activations become {@code x·P}, weights {@code W·P⁻ᵀ}, so
 * {@code (x·P)·(W·P⁻ᵀ)ᵀ = x·Wᵀ} before quantization. The factor sizes come from {@link #decompose}.
 */
public final class KroneckerTransform {
    private final AffineFactor left;
    private final AffineFactor right;

    /** A transform of {@code n}-wide rows, factor sizes {@link #decompose}{@code (n)}, random orthogonal start. */
    public KroneckerTransform(String name, int n, long seed) {
        int[] d = decompose(n);
        this.left = new AffineFactor(name + ".p1", d[0], true, seed);
        this.right = new AffineFactor(name + ".p2", d[1], true, seed * 31 + 17);
    }

    /** A transform with explicit factors. */
    public KroneckerTransform(AffineFactor left, AffineFactor right) {
        this.left = left;
        this.right = right;
    }

    /**
     * FlatQuant's factor sizes (n1, n2), n1·n2 = n, n1 ≤ n2: the smallest {@code a ≥ ⌈√n⌉} with
     * {@code a² − n} a perfect square {@code b²} gives {@code (a − b, a + b)}. No such pair exists
     * when {@code n ≡ 2 (mod 4)} ({@code a − b} and {@code a + b} have equal parity, so their product
     * is odd or a multiple of 4): those sizes are refused rather than searched forever.
     */
    public static int[] decompose(int n) {
        if (n < 1) throw new IllegalArgumentException("dimension " + n + " must be >= 1");
        if (n % 4 == 2) {
            throw new IllegalArgumentException("dimension " + n + " (2 mod 4) has no factorization (a - b)(a + b)");
        }
        long a = (long) Math.ceil(Math.sqrt(n));
        while (true) {
            long d = a * a - n;
            long b = (long) Math.sqrt((double) d);
            while (b * b > d) b--;
            while ((b + 1) * (b + 1) <= d) b++;
            if (b * b == d) return new int[] {(int) (a - b), (int) (a + b)};
            a++;
        }
    }

    public int size() {
        return left.size() * right.size();
    }

    public List<Param> params() {
        List<Param> p = new ArrayList<>(left.params());
        p.addAll(right.params());
        return p;
    }

    /** The transform's matrices on one tape: apply to activations and weights. */
    public Bound bind(Tape tape) {
        return new Bound(tape, left.matrixAndInverseTranspose(tape), right.matrixAndInverseTranspose(tape));
    }

    /** P1, P2 and their inverse-transposes computed once on a tape. */
    public static final class Bound {
        private final Tape tape;
        private final Var[] left;
        private final Var[] right;

        private Bound(Tape tape, Var[] left, Var[] right) {
            this.tape = tape;
            this.left = left;
            this.right = right;
        }

        /** {@code x·(P1 ⊗ P2)} row by row. */
        public Var activations(Var x) {
            return Kronecker.apply(tape, x, left[0], right[0]);
        }

        /** {@code W·(P1 ⊗ P2)⁻ᵀ} (each weight row). */
        public Var weight(Var w) {
            return Kronecker.apply(tape, w, left[1], right[1]);
        }
    }
}
