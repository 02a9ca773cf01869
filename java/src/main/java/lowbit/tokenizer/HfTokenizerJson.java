package lowbit.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import lowbit.io.MalformedModelException;

/**
 * Reads Hugging Face's {@code tokenizer.json} for BPE models, both kinds real decoder checkpoints
 * ship: byte-level BPE (GPT-2, Llama 3, SmolLM2, Qwen2: a {@code ByteLevel} pre-tokenizer) and
 * SentencePiece-style BPE over Unicode characters with byte fallback (Llama 2, TinyLlama, Mistral:
 * a {@code Prepend}/{@code Replace} normalizer or a {@code Metaspace} pre-tokenizer, no ByteLevel).
 * Read: {@code model} of type {@code BPE} ({@code vocab}, {@code merges} as {@code "a b"} strings or
 * {@code ["a","b"]} pairs, {@code ignore_merges}, {@code byte_fallback}, {@code unk_token}), {@code
 * added_tokens} (special ones become control tokens, the others user-defined; both matched literally
 * by {@link BpeTokenizer#encodeWithSpecialTokens}), {@code normalizer} ({@link Normalizer}), {@code
 * pre_tokenizer} ({@code ByteLevel}, {@code Metaspace}, {@code Digits}, {@code Split} with behaviour
 * {@code Isolated}, {@code Sequence}) and {@code decoder} ({@link Decoder}). BOS/EOS come from a
 * {@code tokenizer_config.json} beside the file when present. Anything outside this (WordPiece or
 * Unigram models, subword prefixes, other pre-tokenizers, normalizers or decoders) is rejected by
 * name rather than tokenized differently. The fixtures under {@code src/test/resources} check the
 * result token for token against Hugging Face's {@code tokenizers} library.
 */
final class HfTokenizerJson {
    private static final ObjectMapper JSON = new ObjectMapper();

    private HfTokenizerJson() {}

    static BpeTokenizer read(Path file) throws IOException {
        JsonNode root = parse(file);
        JsonNode model = root.path("model");
        if (!model.isObject()) throw bad(file, "has no \"model\" object");
        String type = model.path("type").asText("BPE");
        if (!type.equals("BPE")) throw bad(file, "model type " + type + " is not BPE");
        for (String key : List.of("continuing_subword_prefix", "end_of_word_suffix")) {
            if (!model.path(key).asText("").isEmpty()) throw bad(file, "model." + key + " (WordPiece-style subword marks) is not supported");
        }
        if (!model.path("dropout").isMissingNode() && !model.path("dropout").isNull() && model.path("dropout").asDouble(0) != 0) {
            throw bad(file, "BPE dropout " + model.path("dropout") + " is a training-time option; inference needs none");
        }
        Normalizer normalizer = new Normalizer(normalizerSteps(file, root.get("normalizer")));
        JsonNode vocab = model.get("vocab");
        if (vocab == null || !vocab.isObject() || vocab.isEmpty()) throw bad(file, "model.vocab is missing or empty");
        JsonNode added = root.path("added_tokens");
        int size = 0;
        for (Map.Entry<String, JsonNode> e : vocab.properties()) {
            if (!e.getValue().canConvertToExactIntegral() || e.getValue().asInt(-1) < 0) {
                throw bad(file, "vocab entry " + e.getKey() + " has id " + e.getValue() + ", not a non-negative integer");
            }
            size = Math.max(size, e.getValue().asInt() + 1);
        }
        for (JsonNode a : added) size = Math.max(size, a.path("id").asInt(-1) + 1);
        String[] tokens = new String[size];
        int[] types = new int[size];
        Arrays.fill(types, 1);
        for (Map.Entry<String, JsonNode> e : vocab.properties()) {
            int id = e.getValue().asInt();
            if (tokens[id] != null) throw bad(file, "vocab gives id " + id + " to both " + tokens[id] + " and " + e.getKey());
            tokens[id] = e.getKey();
        }
        for (JsonNode a : added) {
            int id = a.path("id").asInt(-1);
            String content = a.path("content").asText(null);
            if (id < 0 || content == null) throw bad(file, "added token " + a + " needs an id and a content");
            if (a.path("lstrip").asBoolean(false) || a.path("rstrip").asBoolean(false)) {
                throw bad(file, "added token " + content + " strips whitespace (lstrip/rstrip), which is not supported");
            }
            if (a.path("normalized").asBoolean(false) && !normalizer.isIdentity()) {
                throw bad(file, "added token " + content + " is matched on normalized text (normalized: true), which is not supported");
            }
            if (tokens[id] != null && !tokens[id].equals(content)) {
                throw bad(file, "added token " + content + " has id " + id + ", which the vocabulary gives to " + tokens[id]);
            }
            tokens[id] = content;
            types[id] = a.path("special").asBoolean(false) ? BpeTokenizer.TYPE_CONTROL : BpeTokenizer.TYPE_USER_DEFINED;
        }
        for (int i = 0; i < size; i++) {
            if (tokens[i] == null) throw bad(file, "no token has id " + i + " (ids must run from 0 to " + (size - 1) + ")");
        }
        String[] merges = merges(file, model.path("merges"), vocab);
        JsonNode preNode = root.get("pre_tokenizer");
        List<PreTokenizer.Step> preSteps = preNode == null || preNode.isNull() ? List.of() : steps(file, preNode);
        boolean byteLevel = hasType(preNode, "ByteLevel", "pretokenizers");
        boolean byteFallback = model.path("byte_fallback").asBoolean(false);
        if (byteLevel && byteFallback) throw bad(file, "byte_fallback together with a ByteLevel pre-tokenizer is contradictory");
        int unk = -1;
        String unkToken = model.path("unk_token").asText("");
        if (!byteLevel && !unkToken.isEmpty()) {
            unk = idOf(unkToken, vocab, added);
            if (unk < 0) throw bad(file, "model.unk_token " + unkToken + " is not a token");
        }
        if (!byteLevel && !byteFallback && unk < 0) {
            throw bad(file, "a BPE over characters (no ByteLevel pre-tokenizer) needs byte_fallback or an unk_token for characters outside its vocabulary");
        }
        Decoder decoder = byteLevel ? null : new Decoder(decoderSteps(file, root.get("decoder")));
        if (!byteLevel && preSteps.isEmpty() && normalizer.isIdentity()) {
            throw bad(file, "has neither a ByteLevel pre-tokenizer nor a normalizer or pre-tokenizer that marks spaces (Metaspace, Replace)");
        }
        int[] bosEos = bosEos(file.resolveSibling("tokenizer_config.json"), vocab, added);
        BpeTokenizer.Scheme scheme = new BpeTokenizer.Scheme(normalizer, new PreTokenizer(preSteps), byteLevel, byteFallback, unk,
                model.path("ignore_merges").asBoolean(false), decoder);
        try {
            return new BpeTokenizer(tokens, types, merges, scheme, bosEos[0], bosEos[1]);
        } catch (IllegalArgumentException e) {
            throw bad(file, e.getMessage());
        }
    }

    private static boolean hasType(JsonNode node, String type, String childrenKey) {
        if (node == null || node.isNull()) return false;
        if (type.equals(node.path("type").asText(""))) return true;
        for (JsonNode child : node.path(childrenKey)) {
            if (hasType(child, type, childrenKey)) return true;
        }
        return false;
    }

    private static List<java.util.function.UnaryOperator<String>> normalizerSteps(Path file, JsonNode n) throws MalformedModelException {
        List<java.util.function.UnaryOperator<String>> steps = new ArrayList<>();
        if (n == null || n.isNull()) return steps;
        String type = n.path("type").asText("");
        switch (type) {
            case "Sequence":
                for (JsonNode child : n.path("normalizers")) steps.addAll(normalizerSteps(file, child));
                break;
            case "NFC": steps.add(Normalizer.unicode(java.text.Normalizer.Form.NFC)); break;
            case "NFD": steps.add(Normalizer.unicode(java.text.Normalizer.Form.NFD)); break;
            case "NFKC": steps.add(Normalizer.unicode(java.text.Normalizer.Form.NFKC)); break;
            case "NFKD": steps.add(Normalizer.unicode(java.text.Normalizer.Form.NFKD)); break;
            case "Lowercase": steps.add(Normalizer.lowercase()); break;
            case "Strip": steps.add(Normalizer.strip(n.path("strip_left").asBoolean(true), n.path("strip_right").asBoolean(true))); break;
            case "Replace": steps.add(Normalizer.replace(pattern(file, n, "Replace normalizer"), n.path("content").asText(""))); break;
            case "Prepend": steps.add(Normalizer.prepend(n.path("prepend").asText(""))); break;
            default:
                throw bad(file, "normalizer " + (type.isEmpty() ? n.toString() : type)
                        + " is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend, Sequence)");
        }
        return steps;
    }

    private static List<Decoder.Step> decoderSteps(Path file, JsonNode d) throws MalformedModelException {
        List<Decoder.Step> steps = new ArrayList<>();
        if (d == null || d.isNull()) return steps;
        String type = d.path("type").asText("");
        switch (type) {
            case "Sequence":
                for (JsonNode child : d.path("decoders")) steps.addAll(decoderSteps(file, child));
                break;
            case "Replace": steps.add(Decoder.replace(pattern(file, d, "Replace decoder"), d.path("content").asText(""))); break;
            case "ByteFallback": steps.add(Decoder.byteFallback()); break;
            case "Fuse": steps.add(Decoder.fuse()); break;
            case "Strip": steps.add(Decoder.strip(d.path("content").asText(" "), d.path("start").asInt(0), d.path("stop").asInt(0))); break;
            case "Metaspace": steps.add(Decoder.metaspace(d.path("replacement").asText("\u2581"), !metaspaceScheme(d).equals("never"))); break;
            case "ByteLevel": steps.add(Decoder.byteLevel()); break;
            default:
                throw bad(file, "decoder " + (type.isEmpty() ? d.toString() : type)
                        + " is not supported (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)");
        }
        return steps;
    }

    /** Metaspace's prepend scheme; files older than the field carry {@code add_prefix_space} instead. */
    private static String metaspaceScheme(JsonNode n) {
        if (n.has("prepend_scheme")) return n.get("prepend_scheme").asText();
        return n.path("add_prefix_space").asBoolean(true) ? "always" : "never";
    }

    /** The {@code pattern} of a Replace/Split: {@code {"String": s}} (literal) or {@code {"Regex": r}}. */
    private static Pattern pattern(Path file, JsonNode n, String what) throws MalformedModelException {
        JsonNode pattern = n.path("pattern");
        String regex = pattern.has("Regex") ? pattern.get("Regex").asText()
                : pattern.has("String") ? Pattern.quote(pattern.get("String").asText()) : null;
        if (regex == null) throw bad(file, what + " has no Regex or String pattern: " + pattern);
        try {
            return Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
        } catch (PatternSyntaxException e) {
            throw bad(file, what + " pattern " + regex + " is not a valid Java regex: " + e.getDescription());
        }
    }

    private static String[] merges(Path file, JsonNode merges, JsonNode vocab) throws MalformedModelException {
        if (!merges.isArray()) throw bad(file, "model.merges is missing or not an array");
        String[] out = new String[merges.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode m = merges.get(i);
            String left, right;
            if (m.isTextual()) {
                int space = m.asText().indexOf(' ', 1);
                if (space < 0) throw bad(file, "merge #" + i + " \"" + m.asText() + "\" has no separating space");
                left = m.asText().substring(0, space);
                right = m.asText().substring(space + 1);
            } else if (m.isArray() && m.size() == 2 && m.get(0).isTextual() && m.get(1).isTextual()) {
                left = m.get(0).asText();
                right = m.get(1).asText();
            } else {
                throw bad(file, "merge #" + i + " " + m + " is neither \"a b\" nor [\"a\", \"b\"]");
            }
            for (String part : List.of(left, right, left + right)) {
                if (!vocab.has(part)) throw bad(file, "merge #" + i + " (" + left + " + " + right + ") uses " + part + ", which is not in the vocabulary");
            }
            out[i] = left + " " + right;
        }
        return out;
    }

    private static List<PreTokenizer.Step> steps(Path file, JsonNode pre) throws MalformedModelException {
        List<PreTokenizer.Step> steps = new ArrayList<>();
        String type = pre.path("type").asText("");
        switch (type) {
            case "Sequence":
                for (JsonNode p : pre.path("pretokenizers")) steps.addAll(steps(file, p));
                if (steps.isEmpty()) throw bad(file, "pre_tokenizer Sequence is empty");
                break;
            case "ByteLevel":
                steps.add(PreTokenizer.byteLevel(pre.path("add_prefix_space").asBoolean(false), pre.path("use_regex").asBoolean(true)));
                break;
            case "Digits":
                steps.add(PreTokenizer.digits(pre.path("individual_digits").asBoolean(false)));
                break;
            case "Split":
                String behavior = pre.path("behavior").asText("");
                if (!behavior.equals("Isolated") || pre.path("invert").asBoolean(false)) {
                    throw bad(file, "Split pre-tokenizer with behavior " + behavior + (pre.path("invert").asBoolean(false) ? ", inverted" : "")
                            + " is not supported (Isolated, not inverted)");
                }
                steps.add(PreTokenizer.split(pattern(file, pre, "Split pre-tokenizer")));
                break;
            case "Metaspace":
                try {
                    steps.add(PreTokenizer.metaspace(pre.path("replacement").asText("\u2581"), metaspaceScheme(pre), pre.path("split").asBoolean(true)));
                } catch (IllegalArgumentException e) {
                    throw bad(file, e.getMessage());
                }
                break;
            default:
                throw bad(file, "pre-tokenizer " + (type.isEmpty() ? pre.toString() : type)
                        + " is not supported (ByteLevel, Metaspace, Digits, Split, Sequence)");
        }
        return steps;
    }

    /** BOS and EOS ids named by tokenizer_config.json ({@code bos_token}, {@code eos_token}: a string or {content}), -1 when absent. */
    private static int[] bosEos(Path config, JsonNode vocab, JsonNode added) throws IOException {
        int[] ids = {-1, -1};
        if (!Files.exists(config)) return ids;
        JsonNode root = parse(config);
        String[] keys = {"bos_token", "eos_token"};
        for (int i = 0; i < 2; i++) {
            JsonNode t = root.get(keys[i]);
            if (t == null || t.isNull()) continue;
            String content = t.isTextual() ? t.asText() : t.path("content").asText(null);
            if (content == null) throw bad(config, keys[i] + " " + t + " is neither a string nor {content}");
            ids[i] = idOf(content, vocab, added);
            if (ids[i] < 0) throw bad(config, keys[i] + " " + content + " is not a token of tokenizer.json");
        }
        return ids;
    }

    private static int idOf(String content, JsonNode vocab, JsonNode added) {
        for (JsonNode a : added) {
            if (content.equals(a.path("content").asText(null))) return a.path("id").asInt();
        }
        return vocab.has(content) ? vocab.get(content).asInt() : -1;
    }

    private static JsonNode parse(Path file) throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (IOException e) {
            if (!Files.exists(file)) throw new IOException(file + " does not exist");
            throw new MalformedModelException(file + " is not valid JSON: " + e.getMessage(), -1);
        }
        if (root == null || !root.isObject()) throw new MalformedModelException(file + " is not a JSON object", -1);
        return root;
    }

    private static MalformedModelException bad(Path file, String problem) {
        return new MalformedModelException(file + ": " + problem, -1);
    }
}
