package lowbit.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import lowbit.Context;
import lowbit.model.Generator;
import lowbit.model.DecoderModel;
import lowbit.model.Sampler;
import lowbit.pipeline.QuantizedModel;
import lowbit.pipeline.QuantizedModelFile;
import lowbit.pipeline.Workspace;
import lowbit.tokenizer.BpeTokenizer;
import lowbit.tokenizer.ChatPrompt;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code lowbit generate}: text from a prompt with the FP model or a quantized model file. */
@Command(name = "generate", description = "Generate text from a prompt (FP model or a quantized model file).")
final class GenerateCommand implements Callable<Integer> {
    @Mixin
    ModelOptions options = new ModelOptions();

    @Option(names = {"-p", "--prompt"}, required = true, description = "the prompt")
    String prompt;

    @Option(names = "--chat", description = "wrap the prompt in the model's chat template")
    boolean chat;

    @Option(names = "--file", description = "a quantized model file (default: the FP model)")
    Path file;

    @Option(names = {"-n", "--max-tokens"}, description = "new tokens at most, default ${DEFAULT-VALUE}")
    int maxTokens = 64;

    @Option(names = "--top-k", description = "sample from the k most likely tokens (0 with --top-p 1 and no --temperature: greedy), default ${DEFAULT-VALUE}")
    int topK = 0;

    @Option(names = "--top-p", description = "nucleus sampling mass, default ${DEFAULT-VALUE}")
    float topP = 1f;

    @Option(names = "--temperature", description = "sampling temperature, default ${DEFAULT-VALUE}")
    float temperature = 1f;

    @Option(names = "--greedy", description = "always take the most likely token (ignores top-k/top-p/temperature)")
    boolean greedy;

    @Option(names = "--seed", description = "sampling seed, default ${DEFAULT-VALUE}")
    long seed = 0;

    @Override
    public Integer call() throws Exception {
        if (maxTokens < 1) throw new IllegalArgumentException("--max-tokens must be >= 1");
        Workspace ws = Workspace.open(options.model);
        BpeTokenizer tok = ws.tokenizer();
        DecoderModel model = ws.loadModel();
        boolean sampling = !greedy && (topK > 0 || topP < 1f || temperature != 1f);
        Sampler sampler = sampling ? Sampler.topKTopP(topK, topP, temperature, seed) : Sampler.greedy();
        int[] input = chat ? tok.encodeWithSpecialTokens(ChatPrompt.chatMl(ChatPrompt.DEFAULT_SYSTEM, prompt)) : tok.encode(prompt);
        try (Context ctx = Context.open(options.backend());
             QuantizedModel q = file == null ? null : QuantizedModelFile.load(file, model, ctx)) {
            System.out.println(q == null ? "[FP32 model]" : "[" + q.method().description() + ", " + file + "]");
            System.out.print(prompt);
            System.out.flush();
            long start = System.nanoTime();
            java.util.List<Integer> ids = new java.util.ArrayList<>();
            int[] printed = {0};
            int[] out = new Generator(model).generate(input, maxTokens, sampler, t -> t == tok.eosId(), t -> {
                ids.add(t); // print whole characters only: decode everything so far, emit the new part
                String text = tok.decode(ids.stream().mapToInt(Integer::intValue).toArray());
                if (!text.endsWith("\uFFFD") && text.length() > printed[0]) {
                    System.out.print(text.substring(printed[0]));
                    System.out.flush();
                    printed[0] = text.length();
                }
            });
            System.out.printf("%n[%d tokens, %.1f tokens/s]%n", out.length, out.length / ((System.nanoTime() - start) / 1e9));
        }
        return 0;
    }
}
