package lowbit.tokenizer;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import lowbit.io.GgufFile;
import lowbit.io.MalformedModelException;
import lowbit.io.RealModelFixture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Hugging Face tokenizer.json: the real SmolLM2 vocabulary rewritten as one, toy files, the pre-tokenizer steps, bad input. */
class HfTokenizerJsonTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> TEXTS = List.of(
            "To be, or not to be, that is the question: 1599 + 2 = 1601.",
            "Größere Übungen für Straßenbahnen — naïve café déjà vu.",
            "Съешь же ещё этих мягких французских булок, да выпей чаю.",
            "東京は日本の首都です。今日は良い天気ですね！",
            "안녕하세요, 세계! مرحبا بالعالم. שלום עולם. नमस्ते दुनिया।",
            "emoji 🙂🚀 mixed\tTabs\n\nnew  lines   and    spaces ",
            "def f(x):\n    return x**2  # ½ ⅓ ²³ ٣٤٥",
            "<|im_start|>user\nHi there<|im_end|>\n");

    @TempDir
    Path tmp;

    /** A tokenizer.json equivalent to the GGUF-embedded tokenizer (control/user-defined tokens as added tokens). */
    private Path fromGguf(GgufFile g, boolean mergesAsPairs) throws IOException {
        String[] tokens = g.getStringArray("tokenizer.ggml.tokens");
        long[] types = g.getLongArray("tokenizer.ggml.token_type");
        String[] merges = g.getStringArray("tokenizer.ggml.merges");
        ObjectNode root = JSON.createObjectNode();
        root.put("version", "1.0");
        root.putNull("normalizer");
        ObjectNode pre = root.putObject("pre_tokenizer").put("type", "Sequence");
        ArrayNode steps = pre.putArray("pretokenizers");
        steps.addObject().put("type", "Digits").put("individual_digits", true);
        steps.addObject().put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true).put("use_regex", true);
        root.putObject("decoder").put("type", "ByteLevel");
        ArrayNode added = root.putArray("added_tokens");
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE").putNull("dropout").put("unk_token", "<|endoftext|>").put("byte_fallback", false).put("ignore_merges", false);
        ObjectNode vocab = model.putObject("vocab");
        for (int i = 0; i < tokens.length; i++) {
            vocab.put(tokens[i], i);
            if (types[i] == 3 || types[i] == 4) {
                added.addObject().put("id", i).put("content", tokens[i]).put("single_word", false).put("lstrip", false)
                        .put("rstrip", false).put("normalized", false).put("special", types[i] == 3);
            }
        }
        ArrayNode m = model.putArray("merges");
        for (String merge : merges) {
            if (mergesAsPairs) {
                int space = merge.indexOf(' ', 1);
                m.addArray().add(merge.substring(0, space)).add(merge.substring(space + 1));
            } else {
                m.add(merge);
            }
        }
        Path dir = Files.createDirectories(tmp.resolve(mergesAsPairs ? "pairs" : "strings"));
        Files.writeString(dir.resolve("tokenizer.json"), JSON.writeValueAsString(root));
        ObjectNode config = JSON.createObjectNode();
        config.put("bos_token", tokens[g.getInt("tokenizer.ggml.bos_token_id")]);
        config.putObject("eos_token").put("content", tokens[g.getInt("tokenizer.ggml.eos_token_id")]);
        Files.writeString(dir.resolve("tokenizer_config.json"), JSON.writeValueAsString(config));
        return dir.resolve("tokenizer.json");
    }

    @Test
    void realVocabularyAsTokenizerJsonGivesTheGgufIds() throws IOException {
        GgufFile g = RealModelFixture.gguf();
        BpeTokenizer gguf = BpeTokenizer.fromGguf(g);
        for (boolean pairs : new boolean[] {false, true}) {
            BpeTokenizer hf = BpeTokenizer.fromHfJson(fromGguf(g, pairs));
            assertEquals(gguf.vocabularySize(), hf.vocabularySize());
            assertEquals(gguf.bosId(), hf.bosId());
            assertEquals(gguf.eosId(), hf.eosId());
            for (String text : TEXTS) {
                int[] ids = hf.encode(text);
                assertArrayEquals(gguf.encode(text), ids, text);
                assertArrayEquals(gguf.encodeWithSpecialTokens(text), hf.encodeWithSpecialTokens(text), text);
                assertEquals(text, hf.decode(ids), "round trip");
                assertEquals(text, hf.decode(hf.encodeWithSpecialTokens(text)), "round trip with special tokens");
            }
        }
        // the chat tokens are single ids
        int[] chat = BpeTokenizer.fromHfJson(fromGguf(g, false)).encodeWithSpecialTokens("<|im_start|>user");
        assertEquals(gguf.id("<|im_start|>"), chat[0]);
    }

    // ---- toy files -----------------------------------------------------------------------------

    /** Bytes a, b, c, 1, 2, space (Ġ); merges a+b, Ġ+ab, ab+c; one special token. */
    private static ObjectNode toy() {
        ObjectNode root = JSON.createObjectNode();
        root.putObject("pre_tokenizer").put("type", "ByteLevel").put("add_prefix_space", false).put("use_regex", true);
        ObjectNode model = root.putObject("model").put("type", "BPE");
        ObjectNode vocab = model.putObject("vocab");
        String[] tokens = {"<s>", "a", "b", "c", "Ġ", "ab", "Ġab", "abc", "1", "2"};
        for (int i = 0; i < tokens.length; i++) vocab.put(tokens[i], i);
        model.putArray("merges").add("a b").add("Ġ ab").add("ab c");
        root.putArray("added_tokens").addObject().put("id", 0).put("content", "<s>").put("special", true);
        return root;
    }

    private Path write(ObjectNode root) throws IOException {
        Path p = Files.createTempFile(tmp, "tokenizer", ".json");
        Files.writeString(p, JSON.writeValueAsString(root));
        return p;
    }

    @Test
    void toyTokenizerEncodesAndHasNoBosWithoutConfig() throws IOException {
        BpeTokenizer t = BpeTokenizer.fromHfJson(write(toy()));
        assertArrayEquals(new int[] {5, 6, 3}, t.encode("ab abc"));
        assertArrayEquals(new int[] {0, 7}, t.encodeWithSpecialTokens("<s>abc"));
        assertTrue(t.isSpecial(0));
        assertEquals(-1, t.bosId());
        ObjectNode prefixed = toy();
        ((ObjectNode) prefixed.get("pre_tokenizer")).put("add_prefix_space", true);
        assertArrayEquals(new int[] {6}, BpeTokenizer.fromHfJson(write(prefixed)).encode("ab"));
        ObjectNode ignore = toy();
        ((ObjectNode) ignore.get("model")).put("ignore_merges", true);
        ((ObjectNode) ignore.get("model").get("vocab")).put("ac", 10);
        assertArrayEquals(new int[] {10}, BpeTokenizer.fromHfJson(write(ignore)).encode("ac"));
    }

    @Test
    void preTokenizerSteps() {
        PreTokenizer llama3Like = new PreTokenizer(List.of(
                PreTokenizer.split(java.util.regex.Pattern.compile("\\p{N}{1,3}| ?\\p{L}+|\\s+|[^\\s\\p{L}\\p{N}]+",
                        java.util.regex.Pattern.UNICODE_CHARACTER_CLASS)),
                PreTokenizer.byteLevel(false, false)));
        assertEquals(List.of("123", "45", " apples", "!!"), llama3Like.split("12345 apples!!"));
        assertEquals(List.of("ab", "123", "c", "4"), new PreTokenizer(List.of(PreTokenizer.digits(false))).split("ab123c4"));
        assertEquals(List.of("ab", "1", "2", "3", "c"), new PreTokenizer(List.of(PreTokenizer.digits(true))).split("ab123c"));
    }

    @Test
    void unsupportedOrInconsistentFilesAreRejectedByName() throws IOException {
        ObjectNode noVocab = toy();
        ((ObjectNode) noVocab.get("model")).remove("vocab");
        assertMessage(noVocab, "model.vocab");

        ObjectNode badMerge = toy();
        ((ArrayNode) badMerge.get("model").get("merges")).add("c x");
        assertMessage(badMerge, "merge #3");

        ObjectNode normalizer = toy();
        normalizer.putObject("normalizer").put("type", "BertNormalizer");
        assertMessage(normalizer, "normalizer BertNormalizer");

        ObjectNode decoder = toy();
        ((ObjectNode) decoder.get("pre_tokenizer")).put("type", "Metaspace");
        ((ObjectNode) decoder.get("model")).put("unk_token", "<s>");
        decoder.putObject("decoder").put("type", "WordPiece");
        assertMessage(decoder, "decoder WordPiece");

        ObjectNode fallback = toy();
        ((ObjectNode) fallback.get("pre_tokenizer")).put("type", "Metaspace");
        ((ObjectNode) fallback.get("model")).put("byte_fallback", true);
        assertMessage(fallback, "<0x00>");

        ObjectNode dropout = toy();
        ((ObjectNode) dropout.get("model")).put("dropout", 0.1);
        assertMessage(dropout, "dropout");

        ObjectNode wordPiece = toy();
        ((ObjectNode) wordPiece.get("model")).put("type", "WordPiece");
        assertMessage(wordPiece, "WordPiece");

        ObjectNode metaspace = toy();
        ((ObjectNode) metaspace.get("pre_tokenizer")).put("type", "Metaspace");
        assertMessage(metaspace, "byte_fallback or an unk_token");

        ObjectNode unigram = toy();
        ((ObjectNode) unigram.get("pre_tokenizer")).put("type", "UnicodeScripts");
        assertMessage(unigram, "pre-tokenizer UnicodeScripts");

        ObjectNode gap = toy();
        ((ObjectNode) gap.get("model").get("vocab")).put("zz", 12);
        assertMessage(gap, "no token has id 10");

        ObjectNode clash = toy();
        ((ArrayNode) clash.get("added_tokens")).addObject().put("id", 1).put("content", "<pad>").put("special", true);
        assertMessage(clash, "<pad>");

        Path notJson = tmp.resolve("broken.json");
        Files.writeString(notJson, "{\"model\": ");
        assertTrue(assertThrows(MalformedModelException.class, () -> BpeTokenizer.fromHfJson(notJson)).getMessage().contains("not valid JSON"));
    }

    private void assertMessage(ObjectNode root, String expected) throws IOException {
        Path p = write(root);
        String message = assertThrows(MalformedModelException.class, () -> BpeTokenizer.fromHfJson(p)).getMessage();
        assertTrue(message.contains(expected), message);
    }
}
