package lowbit.abq;

import java.util.List;

/**
 * The time of one bit-plane GEMM ({@code lowbit_bitplane_gemm}) of {@code m} tokens against an
 * {@code n × k} weight at a width, in seconds. {@link BitPlaneGemmTimer} measures it on a context;
 * tests pass a fixed table so that decisions do not depend on a noisy clock.
 */
@FunctionalInterface
public interface GemmTimer {
    double seconds(int n, int k, AbqWidth width, int m);

    /**
     * The times of every width at every M for one (N, K): {@code [width][m]}. A measuring timer
     * overrides this to interleave the runs of the candidates, so that a load burst on the machine
     * falls on all of them alike; the default asks {@link #seconds} one at a time.
     */
    default double[][] seconds(int n, int k, List<AbqWidth> widths, List<Integer> ms) {
        double[][] t = new double[widths.size()][ms.size()];
        for (int i = 0; i < widths.size(); i++) {
            for (int j = 0; j < ms.size(); j++) t[i][j] = seconds(n, k, widths.get(i), ms.get(j));
        }
        return t;
    }
}
