package lowbit.quant;

/** The pure-Java {@link LinearKernel}: the reference simulation of a quantized layer. Stateless. */
final class JavaLinearKernel implements LinearKernel {
    private final QuantizedLinear layer;

    JavaLinearKernel(QuantizedLinear layer) {
        this.layer = layer;
    }

    @Override
    public void forward(float[] x, int tokens, float[] y) {
        QuantizedLinear.Activations a = layer.quantizeActivations(x, tokens);
        JavaIntegerGemm.gemmDequant(a.codes(), layer.weightMatrix(), a.scales(), layer.weightScalesView(),
                layer.biasView(), y);
    }

    @Override
    public String backend() {
        return "Java";
    }

    @Override
    public void close() {}
}
