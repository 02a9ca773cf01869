package lowbit.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import lowbit.io.GgufFile;

/**
 * Byte-level BPE tokenizer (the GPT-2 scheme) as embedded in GGUF files with {@code
 * tokenizer.ggml.model = gpt2}: vocabulary strings over GPT-2's byte alphabet, ranked merges,
 * token types, and BOS/EOS ids. Text is split by the model's pre-tokenizer, each piece is turned
 * into byte characters and merged pair by pair, lowest merge rank first.
 *
 * <p>{@link #encode} treats all text as ordinary text; {@link #encodeWithSpecialTokens} also
 * recognises control tokens such as {@code <|im_start|>} written literally in the text.
 */
public final class BpeTokenizer {
    static final int TYPE_CONTROL = 3;
    static final int TYPE_USER_DEFINED = 4;

    private final String[] tokens;
    private final int[] types;
    private final Map<String, Integer> ids = new HashMap<>();
    private final Map<String, Integer> mergeRanks = new HashMap<>();
    private final List<String> specialTokens = new ArrayList<>();
    private final PreTokenizer preTokenizer;
    private final int bosId;
    private final int eosId;
    private final Map<String, int[]> pieceCache = new ConcurrentHashMap<>();

    private final boolean ignoreMerges;

    BpeTokenizer(String[] tokens, int[] types, String[] merges, String pre, int bosId, int eosId) {
        this(tokens, types, merges, PreTokenizer.forName(pre), false, bosId, eosId);
    }

    /**
     * {@code ignoreMerges}: a pre-tokenized piece that is itself a vocabulary entry becomes that
     * token without merging (Hugging Face's {@code ignore_merges}).
     */
    BpeTokenizer(String[] tokens, int[] types, String[] merges, PreTokenizer preTokenizer, boolean ignoreMerges, int bosId, int eosId) {
        if (types.length != tokens.length) throw new IllegalArgumentException(types.length + " token types for " + tokens.length + " tokens");
        this.tokens = tokens.clone();
        this.types = types.clone();
        for (int i = 0; i < tokens.length; i++) {
            ids.putIfAbsent(tokens[i], i);
            if (types[i] == TYPE_CONTROL || types[i] == TYPE_USER_DEFINED) specialTokens.add(tokens[i]);
        }
        specialTokens.sort((a, b) -> b.length() - a.length()); // longest match first
        for (int rank = 0; rank < merges.length; rank++) {
            String m = merges[rank];
            int space = m.indexOf(' ', 1);
            if (space < 0) throw new IllegalArgumentException("merge #" + rank + " \"" + m + "\" has no separating space");
            mergeRanks.putIfAbsent(m, rank);
        }
        this.preTokenizer = preTokenizer;
        this.ignoreMerges = ignoreMerges;
        this.bosId = bosId;
        this.eosId = eosId;
    }

    /** The tokenizer embedded in a GGUF file ({@code tokenizer.ggml.model} must be {@code gpt2}). */
    public static BpeTokenizer fromGguf(GgufFile gguf) {
        String model = gguf.getString("tokenizer.ggml.model");
        if (!model.equals("gpt2")) throw new IllegalArgumentException("tokenizer model " + model + " is not byte-level BPE (gpt2)");
        String[] tokens = gguf.getStringArray("tokenizer.ggml.tokens");
        int[] types = new int[tokens.length];
        if (gguf.metadata().containsKey("tokenizer.ggml.token_type")) {
            long[] t = gguf.getLongArray("tokenizer.ggml.token_type");
            if (t.length != tokens.length) throw new IllegalArgumentException("token_type has " + t.length + " entries for " + tokens.length + " tokens");
            for (int i = 0; i < t.length; i++) types[i] = (int) t[i];
        } else {
            java.util.Arrays.fill(types, 1);
        }
        String pre = gguf.metadata().containsKey("tokenizer.ggml.pre") ? gguf.getString("tokenizer.ggml.pre") : null;
        int bos = gguf.metadata().containsKey("tokenizer.ggml.bos_token_id") ? gguf.getInt("tokenizer.ggml.bos_token_id") : -1;
        int eos = gguf.metadata().containsKey("tokenizer.ggml.eos_token_id") ? gguf.getInt("tokenizer.ggml.eos_token_id") : -1;
        return new BpeTokenizer(tokens, types, gguf.getStringArray("tokenizer.ggml.merges"), pre, bos, eos);
    }

    /**
     * A Hugging Face {@code tokenizer.json} of a byte-level BPE model (see {@link HfTokenizerJson}
     * for the subset read); BOS/EOS from {@code tokenizer_config.json} beside it, -1 without one.
     */
    public static BpeTokenizer fromHfJson(java.nio.file.Path tokenizerJson) throws java.io.IOException {
        return HfTokenizerJson.read(tokenizerJson);
    }

    public int vocabularySize() {
        return tokens.length;
    }

    /** Id of the beginning-of-sequence token, or -1. */
    public int bosId() {
        return bosId;
    }

    /** Id of the end-of-sequence token, or -1. */
    public int eosId() {
        return eosId;
    }

    /** The vocabulary string of a token (in the byte alphabet for ordinary tokens). */
    public String token(int id) {
        return tokens[id];
    }

    /** Id of the token whose vocabulary string is {@code token}, or -1. */
    public int id(String token) {
        return ids.getOrDefault(token, -1);
    }

    /** Whether {@code id} is a control or user-defined token (such as {@code <|im_end|>}). */
    public boolean isSpecial(int id) {
        return types[id] == TYPE_CONTROL || types[id] == TYPE_USER_DEFINED;
    }

    /** Token ids of {@code text}, all of it treated as ordinary text. */
    public int[] encode(String text) {
        List<Integer> out = new ArrayList<>();
        encodeOrdinary(text, out);
        return toArray(out);
    }

    /** Token ids of {@code text}, where control tokens written literally become their ids. */
    public int[] encodeWithSpecialTokens(String text) {
        List<Integer> out = new ArrayList<>();
        int start = 0;
        int i = 0;
        while (i < text.length()) {
            String special = specialAt(text, i);
            if (special == null) {
                i++;
                continue;
            }
            encodeOrdinary(text.substring(start, i), out);
            out.add(ids.get(special));
            i += special.length();
            start = i;
        }
        encodeOrdinary(text.substring(start), out);
        return toArray(out);
    }

    private String specialAt(String text, int at) {
        for (String s : specialTokens) {
            if (!s.isEmpty() && text.startsWith(s, at)) return s;
        }
        return null;
    }

    private void encodeOrdinary(String text, List<Integer> out) {
        if (text.isEmpty()) return;
        for (String piece : preTokenizer.split(text)) {
            for (int id : pieceCache.computeIfAbsent(piece, this::encodePiece)) out.add(id);
        }
    }

    /** BPE over one pre-tokenized piece. */
    private int[] encodePiece(String piece) {
        byte[] utf8 = piece.getBytes(StandardCharsets.UTF_8);
        List<String> symbols = new ArrayList<>(utf8.length);
        for (byte b : utf8) symbols.add(String.valueOf(ByteLevelAlphabet.charOf(b & 0xFF)));
        if (ignoreMerges) {
            Integer whole = ids.get(String.join("", symbols));
            if (whole != null) return new int[] {whole};
        }
        while (symbols.size() > 1) {
            int bestRank = Integer.MAX_VALUE;
            int best = -1;
            for (int i = 0; i + 1 < symbols.size(); i++) {
                Integer rank = mergeRanks.get(symbols.get(i) + " " + symbols.get(i + 1));
                if (rank != null && rank < bestRank) {
                    bestRank = rank;
                    best = i;
                }
            }
            if (best < 0) break;
            String left = symbols.get(best), right = symbols.get(best + 1);
            List<String> merged = new ArrayList<>(symbols.size());
            for (int i = 0; i < symbols.size(); i++) {
                if (i + 1 < symbols.size() && symbols.get(i).equals(left) && symbols.get(i + 1).equals(right)) {
                    merged.add(left + right);
                    i++;
                } else {
                    merged.add(symbols.get(i));
                }
            }
            symbols = merged;
        }
        int[] result = new int[symbols.size()];
        for (int i = 0; i < result.length; i++) {
            Integer id = ids.get(symbols.get(i));
            if (id == null) throw new IllegalStateException("symbol " + symbols.get(i) + " of piece \"" + piece + "\" is not in the vocabulary");
            result[i] = id;
        }
        return result;
    }

    /** The text of {@code ids}; control tokens appear as their literal text. Invalid UTF-8 becomes U+FFFD. */
    public String decode(int[] ids) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        for (int id : ids) appendBytes(id, bytes);
        return bytes.toString(StandardCharsets.UTF_8);
    }

    /** The raw bytes token {@code id} stands for (a token may hold part of a UTF-8 character). */
    public byte[] tokenBytes(int id) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        appendBytes(id, bytes);
        return bytes.toByteArray();
    }

    private void appendBytes(int id, ByteArrayOutputStream out) {
        String t = tokens[id];
        if (isSpecial(id)) {
            out.writeBytes(t.getBytes(StandardCharsets.UTF_8));
            return;
        }
        for (int i = 0; i < t.length(); i++) {
            int b = ByteLevelAlphabet.byteOf(t.charAt(i));
            if (b < 0) {
                out.writeBytes(String.valueOf(t.charAt(i)).getBytes(StandardCharsets.UTF_8));
            } else {
                out.write(b);
            }
        }
    }

    private static int[] toArray(List<Integer> list) {
        int[] a = new int[list.size()];
        for (int i = 0; i < a.length; i++) a[i] = list.get(i);
        return a;
    }
}
