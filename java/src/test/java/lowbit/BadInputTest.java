package lowbit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Bad input gets a clear exception naming the problem, never a crash or silent garbage. */
class BadInputTest {
    private Context ctx;

    @BeforeEach
    void open() {
        ctx = Context.open(Backend.CPU);
    }

    @AfterEach
    void close() {
        ctx.close();
    }

    private static void assertMessage(Throwable e, String... parts) {
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "message '" + e.getMessage() + "' should mention '" + p + "'");
        }
    }

    @Test
    void nonPositiveDimensions() {
        assertMessage(assertThrows(IllegalArgumentException.class, () -> ctx.allocate(DType.F32, 0, 3)), "positive");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> ctx.allocate(DType.F32, 3, -1)), "positive");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> ctx.allocate(DType.F32, 1L << 40, 1L << 20)),
                "too large");
    }

    @Test
    void arrayLengthsMustMatchShapes() {
        try (Tensor t = ctx.allocate(DType.F32, 3, 5)) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> t.copyFrom(new float[14])), "14", "15");
            assertMessage(assertThrows(IllegalArgumentException.class, () -> t.copyFrom(new byte[15])), "S8 or S4");
        }
        try (Tensor t = ctx.allocate(DType.S4, 3, 5)) {
            assertEquals(6, t.ld());
            assertMessage(assertThrows(IllegalArgumentException.class, () -> t.copyFrom(new byte[8])), "expected 9 bytes");
        }
    }

    @Test
    void nullAndClosedTensors() {
        Tensor x = ctx.upload(new float[] {1, 2, 3, 4}, 2, 2);
        assertThrows(NullPointerException.class, () -> ctx.quantize(null, 8, Granularity.PER_ROW));
        x.close();
        x.close(); // double close is harmless
        assertMessage(assertThrows(IllegalStateException.class, () -> ctx.quantize(x, 8, Granularity.PER_ROW)), "closed");
        assertMessage(assertThrows(IllegalStateException.class, x::toFloatArray), "closed");
    }

    @Test
    void closedContext() {
        Context other = Context.open(Backend.CPU);
        Tensor t = other.allocate(DType.F32, 1, 1);
        other.close();
        assertMessage(assertThrows(IllegalStateException.class, () -> other.allocate(DType.F32, 1, 1)), "closed");
        // A tensor keeps working after its context is closed (native memory is reference counted).
        t.copyFrom(new float[] {3f});
        assertEquals(3f, t.toFloatArray()[0]);
        t.close();
    }

    @Test
    void mismatchedK() {
        try (Tensor a = ctx.upload(new byte[6], DType.S8, 2, 3);
                Tensor b = ctx.upload(new byte[8], DType.S8, 2, 4)) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> ctx.gemm(a, b)), "K mismatch", "2 x 3", "2 x 4");
        }
    }

    @Test
    void unsupportedOperandTypes() {
        try (Tensor a = ctx.allocate(DType.S4, 2, 4);
                Tensor b = ctx.allocate(DType.S8, 2, 4)) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> ctx.gemm(a, b)), "S4 x S8");
        }
        try (Tensor a = ctx.allocate(DType.F32, 2, 4)) {
            assertThrows(IllegalArgumentException.class, () -> ctx.gemm(a, a));
        }
    }

    @Test
    void groupMustDivideColumns() {
        try (Tensor x = ctx.upload(new float[10], 2, 5)) {
            assertMessage(assertThrows(IllegalArgumentException.class,
                    () -> ctx.quantize(x, 8, Granularity.PER_GROUP, 2)), "group size 2", "5");
            assertThrows(IllegalArgumentException.class, () -> ctx.quantize(x, 8, Granularity.PER_GROUP, 0));
        }
    }

    @Test
    void badBitWidths() {
        try (Tensor x = ctx.upload(new float[4], 2, 2)) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> ctx.quantize(x, 3, Granularity.PER_ROW)),
                    "bits");
        }
    }

    @Test
    void nonFiniteInputsAreRejectedOnEveryIsa() {
        for (CpuIsa isa : CpuKernelTest.isas().toArray(CpuIsa[]::new)) {
            ctx.setCpuIsa(isa);
            for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                for (Granularity g : Granularity.values()) {
                    float[] x = new float[3 * 8];
                    x[13] = bad;
                    try (Tensor t = ctx.upload(x, 3, 8)) {
                        NonFiniteInputException e = assertThrows(NonFiniteInputException.class,
                                () -> ctx.quantize(t, 8, g, 4).close());
                        assertMessage(e, "lowbit_quantize", "row 1", "column 5");
                    }
                }
            }
        }
    }

    @Test
    void flattenPlansAreChecked() {
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> ctx.uploadPlan(new int[] {0, 3}, new float[] {1, 1}, 3)), "plan entry 1", "source column 3");
        assertThrows(IllegalArgumentException.class, () -> ctx.uploadPlan(new int[] {0}, new float[] {Float.NaN}, 3));
        assertThrows(IllegalArgumentException.class, () -> ctx.uploadPlan(new int[] {0, 1}, new float[] {1}, 3));
        float[] x = new float[2 * 6];
        x[6 + 5] = Float.POSITIVE_INFINITY;
        try (Tensor t = ctx.upload(x, 2, 6);
                ExpansionPlan plan = ctx.uploadPlan(new int[] {0, 1, 2, 3, 4, 5, 5}, new float[] {1, 1, 1, 1, 1, .5f, .5f}, 6);
                ExpansionPlan wrong = ctx.uploadPlan(new int[] {0, 1}, new float[] {1, 1}, 5);
                QuantizedTensor q = ctx.allocateQuantized(2, 7, 8, Granularity.PER_TENSOR, 0)) {
            assertMessage(assertThrows(NonFiniteInputException.class, () -> ctx.flattenQuantizeInto(t, plan, q)),
                    "lowbit_flatten_quantize", "row 1", "column 5");
            assertMessage(assertThrows(IllegalArgumentException.class, () -> ctx.flattenQuantizeInto(t, wrong, q)),
                    "reads 5 columns");
        }
    }

    @Test
    void badStaticScales() {
        try (Tensor x = ctx.upload(new float[] {1, 2, 3, 4}, 2, 2);
                QuantizedTensor q = ctx.allocateQuantized(2, 2, 8, Granularity.PER_ROW, 0)) {
            q.scales().copyFrom(new float[] {0.5f, 0f});
            LowbitException e = assertThrows(LowbitException.class, () -> ctx.quantizeWithScales(x, q));
            assertEquals(LowbitException.Status.INVALID_ARGUMENT, e.status());
            assertMessage(e, "scale");
            q.scales().copyFrom(new float[] {0.5f, Float.NaN});
            assertThrows(LowbitException.class, () -> ctx.quantizeWithScales(x, q));
        }
    }

    @Test
    void tensorsFromAnotherContext() {
        try (Context other = Context.open(Backend.CPU);
                Tensor a = other.allocate(DType.S8, 2, 2);
                Tensor b = ctx.allocate(DType.S8, 2, 2)) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> ctx.gemm(a, b)), "another context");
        }
    }

    @Test
    void epilogueNeedsPerRowOrPerTensorScales() {
        try (Tensor x = ctx.upload(new float[8], 2, 4);
                QuantizedTensor g = ctx.quantize(x, 8, Granularity.PER_GROUP, 2);
                QuantizedTensor r = ctx.quantize(x, 8, Granularity.PER_ROW)) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> ctx.gemm(g, r, null, DType.F32)),
                    "PER_GROUP");
            try (Tensor badBias = ctx.allocate(DType.F32, 1, 3)) {
                assertMessage(assertThrows(IllegalArgumentException.class, () -> ctx.gemm(r, r, badBias, DType.F32)),
                        "bias");
            }
            assertThrows(IllegalArgumentException.class, () -> ctx.gemm(r, r, null, DType.S8));
        }
    }

    @Test
    void cudaWithoutDeviceSaysSo() {
        if (Lowbit.cudaDeviceCount() > 0) {
            return; // this host has a GPU: the GPU tests cover CUDA
        }
        LowbitException e = assertThrows(LowbitException.class, () -> Context.open(Backend.CUDA));
        assertTrue(e instanceof NoDeviceException || e.status() == LowbitException.Status.UNSUPPORTED, e.toString());
        assertTrue(e.getMessage().contains("CUDA"), e.getMessage());
        assertEquals(Backend.CPU, Backend.auto());
    }

    @Test
    void unsupportedIsaIsRefused() {
        CpuIsa best = Lowbit.cpuIsaBest();
        if (best != CpuIsa.AVX512_VNNI) {
            LowbitException e = assertThrows(LowbitException.class, () -> ctx.setCpuIsa(CpuIsa.AVX512_VNNI));
            assertEquals(LowbitException.Status.UNSUPPORTED, e.status());
        }
        assertThrows(IllegalArgumentException.class, () -> ctx.setThreads(-1));
    }
}
