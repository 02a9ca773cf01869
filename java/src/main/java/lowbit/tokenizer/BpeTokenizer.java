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
    private final Scheme scheme;
    private final int bosId;
    private final int eosId;
    private final Map<String, int[]> pieceCache = new ConcurrentHashMap<>();
    /** Pieces longer than this (a whole segment when there is no pre-tokenizer) are not cached. */
    private static final int CACHED_PIECE_CHARS = 64;

    /**
     * How text becomes symbols and back, beside the vocabulary and merges.
     *
     * @param byteLevel GPT-2 scheme: a piece's UTF-8 bytes, each as a character of the byte alphabet,
     *     are the initial symbols; otherwise its Unicode characters are (SentencePiece-style BPE)
     * @param byteFallback (character scheme) a final symbol not in the vocabulary becomes the {@code
     *     <0xNN>} tokens of its UTF-8 bytes
     * @param unkId (character scheme, no byte fallback) the token of unknown symbols, -1: an error
     * @param ignoreMerges a piece that is itself a vocabulary entry becomes that token without
     *     merging (Hugging Face's {@code ignore_merges})
     * @param decoder token strings to text; null: the GPT-2 byte alphabet, control tokens literal
     */
    record Scheme(Normalizer normalizer, PreTokenizer preTokenizer, boolean byteLevel, boolean byteFallback,
            int unkId, boolean ignoreMerges, Decoder decoder) {
        static Scheme gpt2(PreTokenizer pre) {
            return new Scheme(Normalizer.NONE, pre, true, false, -1, false, null);
        }
    }

    BpeTokenizer(String[] tokens, int[] types, String[] merges, String pre, int bosId, int eosId) {
        this(tokens, types, merges, Scheme.gpt2(PreTokenizer.forName(pre)), bosId, eosId);
    }

    BpeTokenizer(String[] tokens, int[] types, String[] merges, Scheme scheme, int bosId, int eosId) {
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
        this.scheme = scheme;
        if (scheme.unkId() >= tokens.length) throw new IllegalArgumentException("unknown-token id " + scheme.unkId() + " is outside the vocabulary");
        if (scheme.byteFallback()) {
            for (int b = 0; b < 256; b++) {
                if (!ids.containsKey(byteTokenName(b))) throw new IllegalArgumentException("byte fallback needs token " + byteTokenName(b) + ", which the vocabulary lacks");
            }
        }
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
        encodeOrdinary(text, true, out);
        return toArray(out);
    }

    /**
     * Token ids of {@code text}, where control and user-defined tokens written literally become their
     * ids (as Hugging Face's {@code encode} does); the ordinary text between them is normalized and
     * pre-tokenized segment by segment.
     */
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
            encodeOrdinary(text.substring(start, i), start == 0, out);
            out.add(ids.get(special));
            i += special.length();
            start = i;
        }
        encodeOrdinary(text.substring(start), start == 0, out);
        return toArray(out);
    }

    private String specialAt(String text, int at) {
        for (String s : specialTokens) {
            if (!s.isEmpty() && text.startsWith(s, at)) return s;
        }
        return null;
    }

    private void encodeOrdinary(String text, boolean atStart, List<Integer> out) {
        if (text.isEmpty()) return;
        String normalized = scheme.normalizer().apply(text);
        if (normalized.isEmpty()) return;
        for (String piece : scheme.preTokenizer().split(normalized, atStart)) {
            int[] encoded = piece.length() <= CACHED_PIECE_CHARS ? pieceCache.computeIfAbsent(piece, this::encodePiece) : encodePiece(piece);
            for (int id : encoded) out.add(id);
        }
    }

    /** BPE over one pre-tokenized piece: lowest merge rank first, leftmost first among equal ranks. */
    private int[] encodePiece(String piece) {
        List<String> initial = new ArrayList<>(piece.length());
        if (scheme.byteLevel()) {
            for (byte b : piece.getBytes(StandardCharsets.UTF_8)) initial.add(String.valueOf(ByteLevelAlphabet.charOf(b & 0xFF)));
        } else {
            piece.codePoints().forEach(cp -> initial.add(new String(Character.toChars(cp))));
        }
        if (scheme.ignoreMerges()) {
            Integer whole = ids.get(String.join("", initial));
            if (whole != null) return new int[] {whole};
        }
        List<String> symbols = BpeMerge.apply(initial, mergeRanks);
        List<Integer> result = new ArrayList<>(symbols.size());
        for (String symbol : symbols) {
            Integer id = ids.get(symbol);
            if (id != null) {
                result.add(id);
            } else if (scheme.byteFallback()) {
                for (byte b : symbol.getBytes(StandardCharsets.UTF_8)) result.add(ids.get(byteTokenName(b & 0xFF)));
            } else if (scheme.unkId() >= 0) {
                // consecutive unknown symbols fuse into one unknown token (fuse_unk)
                if (result.isEmpty() || result.get(result.size() - 1) != scheme.unkId()) result.add(scheme.unkId());
            } else {
                throw new IllegalStateException("symbol " + symbol + " of piece \"" + piece + "\" is not in the vocabulary");
            }
        }
        return toArray(result);
    }

    private static String byteTokenName(int b) {
        return String.format("<0x%02X>", b);
    }

    /** The text of {@code ids}; control tokens appear as their literal text. Invalid UTF-8 becomes U+FFFD. */
    public String decode(int[] ids) {
        if (scheme.decoder() != null) {
            List<String> strings = new ArrayList<>(ids.length);
            for (int id : ids) strings.add(tokens[id]);
            return scheme.decoder().decode(strings);
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        for (int id : ids) appendBytes(id, bytes);
        return bytes.toString(StandardCharsets.UTF_8);
    }

    /**
     * The raw bytes token {@code id} stands for (a token may hold part of a UTF-8 character), for
     * streaming output token by token. In the character scheme "▁" stands for a space and {@code
     * <0xNN>} for its byte; a decoder's removal of the first leading space is not applied here.
     */
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
        if (!scheme.byteLevel()) {
            int b = Decoder.byteToken(t);
            if (b >= 0) out.write(b);
            else out.writeBytes(t.replace("\u2581", " ").getBytes(StandardCharsets.UTF_8));
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
