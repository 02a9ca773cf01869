package lowbit.tokenizer;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Token-for-token agreement with Hugging Face's {@code tokenizers} library (0.23.3) on the three
 * fixtures of {@code make_fixtures.py}: SentencePiece-style BPE with byte fallback behind a
 * Prepend/Replace normalizer (Llama 2), the same model behind a Metaspace pre-tokenizer (Mistral),
 * and byte-level BPE behind an NFKC + Lowercase normalizer. The expected ids and decoded strings
 * in {@code expected.json} were produced by that library, not by lowbit.
 */
class HfTokenizerFixtureTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    private Path resource(String name) throws IOException {
        Path p = tmp.resolve(name);
        try (InputStream in = getClass().getResourceAsStream("/lowbit/tokenizer/" + name)) {
            assertNotNull(in, "test resource " + name);
            Files.copy(in, p);
        }
        return p;
    }

    @Test
    void encodingsAndDecodingsMatchHuggingFaceTokenizers() throws IOException {
        JsonNode expected = JSON.readTree(resource("expected.json").toFile());
        int checked = 0;
        for (var file : (Iterable<Map.Entry<String, JsonNode>>) expected::fields) {
            BpeTokenizer t = BpeTokenizer.fromHfJson(resource(file.getKey()));
            for (JsonNode c : file.getValue()) {
                String text = c.get("text").asText();
                int[] want = new int[c.get("ids").size()];
                for (int i = 0; i < want.length; i++) want[i] = c.get("ids").get(i).asInt();
                int[] got = t.encodeWithSpecialTokens(text);
                assertArrayEquals(want, got, file.getKey() + ": " + text + "\n got " + Arrays.toString(got));
                assertEquals(c.get("decoded").asText(), t.decode(got), file.getKey() + " decode of " + text);
                checked++;
            }
        }
        assertEquals(24, checked);
    }

    @Test
    void byteFallbackRoundTripsAnyTextAndStreamsBytes() throws IOException {
        BpeTokenizer t = BpeTokenizer.fromHfJson(resource("sp-bpe.tokenizer.json"));
        String text = "Grüße 東京 🙂 ok";
        int[] ids = t.encode(text);
        assertEquals(text, t.decode(ids));
        // token by token, the raw bytes concatenate to the text with the normalizer's leading "▁" as a space
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        for (int id : ids) bytes.writeBytes(t.tokenBytes(id));
        assertEquals(" " + text, bytes.toString(java.nio.charset.StandardCharsets.UTF_8));
    }

    /** The priority-queue merge gives what the naive "merge the lowest-ranked pair everywhere" loop gives. */
    @Test
    void fastMergeEqualsNaiveMerge() {
        Random rnd = new Random(7);
        String alphabet = "abcd";
        for (int trial = 0; trial < 300; trial++) {
            // random merges over a small alphabet, each merging two existing symbols
            List<String> symbols = new ArrayList<>(List.of("a", "b", "c", "d"));
            Map<String, Integer> ranks = new HashMap<>();
            for (int r = 0; r < 12; r++) {
                String x = symbols.get(rnd.nextInt(symbols.size())), y = symbols.get(rnd.nextInt(symbols.size()));
                if (ranks.putIfAbsent(x + " " + y, ranks.size()) == null) symbols.add(x + y);
            }
            int len = 1 + rnd.nextInt(40);
            List<String> word = new ArrayList<>();
            for (int i = 0; i < len; i++) word.add(String.valueOf(alphabet.charAt(rnd.nextInt(alphabet.length()))));
            assertEquals(naive(word, ranks), BpeMerge.apply(word, ranks), "word " + String.join("", word) + " ranks " + ranks);
        }
    }

    private static List<String> naive(List<String> symbols, Map<String, Integer> ranks) {
        while (symbols.size() > 1) {
            int bestRank = Integer.MAX_VALUE, best = -1;
            for (int i = 0; i + 1 < symbols.size(); i++) {
                Integer r = ranks.get(symbols.get(i) + " " + symbols.get(i + 1));
                if (r != null && r < bestRank) {
                    bestRank = r;
                    best = i;
                }
            }
            if (best < 0) break;
            String l = symbols.get(best), r = symbols.get(best + 1);
            List<String> merged = new ArrayList<>();
            for (int i = 0; i < symbols.size(); i++) {
                if (i + 1 < symbols.size() && symbols.get(i).equals(l) && symbols.get(i + 1).equals(r)) {
                    merged.add(l + r);
                    i++;
                } else {
                    merged.add(symbols.get(i));
                }
            }
            symbols = merged;
        }
        return symbols;
    }
}
