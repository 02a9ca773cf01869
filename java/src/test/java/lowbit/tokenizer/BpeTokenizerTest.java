package lowbit.tokenizer;

import static org.junit.jupiter.api.Assertions.*;

import java.util.List;
import lowbit.io.RealModelFixture;
import org.junit.jupiter.api.Test;

class BpeTokenizerTest {
    /** A toy vocabulary: bytes a, b, c, space (Ġ), merges "a b" then "Ġ ab" then "ab c". */
    private static BpeTokenizer toy() {
        String[] tokens = {"<s>", "a", "b", "c", "Ġ", "ab", "Ġab", "abc", "1", "2"};
        int[] types = {3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
        String[] merges = {"a b", "Ġ ab", "ab c"};
        return new BpeTokenizer(tokens, types, merges, "smollm", 0, 0);
    }

    @Test
    void mergesLowestRankFirst() {
        BpeTokenizer t = toy();
        assertArrayEquals(new int[] {7}, t.encode("abc"));
        assertArrayEquals(new int[] {5, 6, 3}, t.encode("ab abc")); // "Ġ ab" outranks "ab c"
        assertArrayEquals(new int[] {1, 8, 9, 2}, t.encode("a12b"));
        assertArrayEquals(new int[] {0, 7}, t.encodeWithSpecialTokens("<s>abc"));
        assertArrayEquals(new int[] {1, 3}, t.encode("ac"));
        assertEquals("<s>ab abc", t.decode(new int[] {0, 5, 6, 3}));
    }

    @Test
    void byteAlphabetIsABijection() {
        boolean[] seen = new boolean[256];
        for (int b = 0; b < 256; b++) {
            char c = ByteLevelAlphabet.charOf(b);
            assertEquals(b, ByteLevelAlphabet.byteOf(c));
            seen[b] = true;
        }
        assertEquals('Ġ', ByteLevelAlphabet.charOf(' '));
        assertEquals('Ċ', ByteLevelAlphabet.charOf('\n'));
        assertEquals('A', ByteLevelAlphabet.charOf('A'));
    }

    @Test
    void smollmPreTokenizerIsolatesDigitsAndKeepsWhitespaceRuns() {
        PreTokenizer p = PreTokenizer.forName("smollm");
        assertEquals(List.of("I", "'ve", " got", " ", "1", "2", " apples", "!!", "   ", " x", "\n\n"),
                p.split("I've got 12 apples!!    x\n\n"));
        assertEquals(List.of("hello", " world", " 123"), PreTokenizer.forName("gpt2").split("hello world 123"));
    }

    // ---- the real SmolLM2 vocabulary ----

    private static BpeTokenizer real() {
        return BpeTokenizer.fromGguf(RealModelFixture.gguf());
    }

    @Test
    void knownIdsOfTheRealVocabulary() {
        BpeTokenizer t = real();
        assertEquals(49152, t.vocabularySize());
        assertEquals(1, t.bosId()); // <|im_start|>, per tokenizer.ggml.bos_token_id
        assertEquals(2, t.eosId()); // <|im_end|>
        // Hugging Face's SmolLM2 tokenizer gives [19556, 905] for "Hello world"
        assertArrayEquals(new int[] {19556, 905}, t.encode("Hello world"));
        // digits are split one by one; byte tokens follow the 17 control tokens in GPT-2's
        // byte order, which starts at '!', so '0' is 17 + ('0' - '!') = 32
        assertArrayEquals(new int[] {34, 32, 34, 36}, t.encode("2024"));
        assertArrayEquals(new int[] {1, 4093, 198}, t.encodeWithSpecialTokens("<|im_start|>user\n"));
        assertEquals("<|im_start|>user\n", t.decode(new int[] {1, 4093, 198}));
    }

    @Test
    void roundTripsMultilingualText() {
        BpeTokenizer t = real();
        String[] texts = {
            "To be, or not to be, that is the question.",
            "Où est la bibliothèque? Ça coûte 12,50 € — naïve façade, Straße, Ærøskøbing.",
            "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.",
            "Emoji: 🙂👍🏽🇫🇷 and a family 👨‍👩‍👧 done",
            "tabs\tand  double  spaces,\n\nnewlines\r\n   and trailing   ",
            "Привет, мир! Γειά σου Κόσμε! مرحبا بالعالم",
            "x = f(3.14159) + arr[42]; // code-ish ",
        };
        for (String text : texts) {
            int[] ids = t.encode(text);
            assertEquals(text, t.decode(ids), "round trip of " + text);
            assertTrue(ids.length < text.getBytes(java.nio.charset.StandardCharsets.UTF_8).length + 1);
        }
        // English is compressed well, CJK at least to whole characters for common ones
        assertTrue(t.encode(texts[0]).length <= 13, "English sentence tokens: " + t.encode(texts[0]).length);
    }
}
