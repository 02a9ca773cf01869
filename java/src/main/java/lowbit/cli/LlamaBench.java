package lowbit.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs llama.cpp's {@code llama-bench} ({@code -m gguf -t threads -p prompt -n gen -r reps -o json})
 * and reads its prefill and decode rates (tokens/s, mean and standard deviation over the repetitions).
 */
final class LlamaBench {
    /** One llama-bench result: prefill (pp) and decode (tg) tokens/s, mean ± sd. */
    record Result(double prefill, double prefillSd, double decode, double decodeSd, String build) {}

    private LlamaBench() {}

    static Result run(Path binary, Path gguf, int threads, int prompt, int gen, int reps) throws IOException, InterruptedException {
        if (!Files.isExecutable(binary)) throw new IOException(binary + " is not an executable llama-bench");
        List<String> cmd = new ArrayList<>(List.of(binary.toString(), "-m", gguf.toString(), "-t", String.valueOf(threads),
                "-p", String.valueOf(prompt), "-n", String.valueOf(gen), "-r", String.valueOf(reps), "-o", "json"));
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(10, TimeUnit.MINUTES) || p.exitValue() != 0) {
            throw new IOException("llama-bench failed (exit " + (p.isAlive() ? "timeout" : p.exitValue()) + "): " + String.join(" ", cmd));
        }
        JsonNode root = new ObjectMapper().readTree(new String(out, StandardCharsets.UTF_8));
        double pp = Double.NaN, ppSd = Double.NaN, tg = Double.NaN, tgSd = Double.NaN;
        String build = "";
        for (JsonNode r : root) {
            build = r.path("build_commit").asText("") + " " + r.path("cpu_info").asText("");
            if (r.path("n_prompt").asInt() > 0 && r.path("n_gen").asInt() == 0) {
                pp = r.path("avg_ts").asDouble();
                ppSd = r.path("stddev_ts").asDouble();
            } else if (r.path("n_gen").asInt() > 0 && r.path("n_prompt").asInt() == 0) {
                tg = r.path("avg_ts").asDouble();
                tgSd = r.path("stddev_ts").asDouble();
            }
        }
        if (Double.isNaN(pp) || Double.isNaN(tg)) throw new IOException("llama-bench printed no pp/tg results: " + new String(out, StandardCharsets.UTF_8));
        return new Result(pp, ppSd, tg, tgSd, build.trim());
    }
}
