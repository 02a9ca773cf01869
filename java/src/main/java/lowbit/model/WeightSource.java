package lowbit.model;

import java.io.IOException;

/**
 * Where a decoder's weights come from, in GGUF tensor names and GGML dimension order (innermost
 * first: a linear weight is {@code (in, out)}), with Q/K rows in the order llama.cpp's adjacent-pair
 * RoPE expects. A GGUF file is read as it is; {@link HfLlamaWeights} maps a Hugging Face checkpoint
 * onto it.
 */
interface WeightSource {
    /** Whether the optional tensor {@code name} is present. */
    boolean has(String name);

    /** Tensor {@code name} as float32, after checking its dimensions; a clear exception when absent or mis-shaped. */
    float[] read(String name, long... dims) throws IOException;
}
