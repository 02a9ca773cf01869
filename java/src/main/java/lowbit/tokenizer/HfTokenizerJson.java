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
 * Reads the subset of Hugging Face's {@code tokenizer.json} that byte-level BPE models use: {@code
 * model} of type {@code BPE} ({@code vocab} object, {@code merges} as {@code "a b"} strings or
 * {@code ["a","b"]} pairs, {@code ignore_merges}), {@code added_tokens} (special ones become control
 * tokens, the others user-defined; both are matched literally by {@link
 * BpeTokenizer#encodeWithSpecialTokens}), and {@code pre_tokenizer} built from {@code ByteLevel},
 * {@code Digits}, {@code Split} (regex or string, behaviour {@code Isolated}) and {@code Sequence}.
 * BOS/EOS come from a {@code tokenizer_config.json} beside the file when present. Anything outside
 * the subset (a normalizer, byte fallback, subword prefixes, other pre-tokenizers) is rejected by
 * name rather than tokenized differently.
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
        if (model.path("byte_fallback").asBoolean(false)) throw bad(file, "byte_fallback BPE (SentencePiece style) is not byte-level BPE");
        for (String key : List.of("continuing_subword_prefix", "end_of_word_suffix")) {
            if (!model.path(key).asText("").isEmpty()) throw bad(file, "model." + key + " is not supported by byte-level BPE");
        }
        JsonNode normalizer = root.get("normalizer");
        if (normalizer != null && !normalizer.isNull()) {
            throw bad(file, "normalizer " + normalizer.path("type").asText("?") + " is not supported (byte-level BPE models use none)");
        }
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
        PreTokenizer pre = new PreTokenizer(steps(file, root.get("pre_tokenizer")));
        int[] bosEos = bosEos(file.resolveSibling("tokenizer_config.json"), vocab, added);
        return new BpeTokenizer(tokens, types, merges, pre, model.path("ignore_merges").asBoolean(false), bosEos[0], bosEos[1]);
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
        if (pre == null || pre.isNull()) throw bad(file, "has no pre_tokenizer; byte-level BPE needs at least ByteLevel");
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
                JsonNode pattern = pre.path("pattern");
                String regex = pattern.has("Regex") ? pattern.get("Regex").asText()
                        : pattern.has("String") ? Pattern.quote(pattern.get("String").asText()) : null;
                if (regex == null) throw bad(file, "Split pre-tokenizer has no Regex or String pattern: " + pattern);
                try {
                    steps.add(PreTokenizer.split(Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS)));
                } catch (PatternSyntaxException e) {
                    throw bad(file, "Split pattern " + regex + " is not a valid Java regex: " + e.getDescription());
                }
                break;
            default:
                throw bad(file, "pre-tokenizer " + (type.isEmpty() ? pre.toString() : type)
                        + " is not supported (ByteLevel, Digits, Split, Sequence)");
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
