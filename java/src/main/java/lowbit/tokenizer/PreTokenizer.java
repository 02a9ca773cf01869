package lowbit.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Splits text into the pieces that BPE encodes separately: a sequence of steps, each cutting every
 * piece of the previous step further, as Hugging Face's {@code Sequence} pre-tokenizer does. The
 * steps byte-level BPE models use are {@link #byteLevel} (GPT-2's regex, optionally a prefix
 * space), {@link #digits} and {@link #split} (a regex whose matches become pieces of their own,
 * behaviour {@code Isolated}).
 *
 * <p>{@link #forName} gives the pre-tokenizer a GGUF file's {@code tokenizer.ggml.pre} names: {@code
 * gpt2} (and a missing value) is GPT-2's regex; {@code smollm} (also StarCoder-family and a few
 * others, as in llama.cpp) first isolates every numeric character, then applies GPT-2's regex to the
 * rest — the same as Hugging Face's {@code Digits(individual_digits)} followed by {@code ByteLevel}.
 */
final class PreTokenizer {
    static final String GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    private static final Pattern GPT2 = Pattern.compile(GPT2_REGEX, Pattern.UNICODE_CHARACTER_CLASS);

    /**
     * One step: appends the pieces of {@code piece} to {@code out}; {@code atStart}: the piece begins
     * the text being encoded (Metaspace's prepend scheme {@code first} needs to know).
     */
    @FunctionalInterface
    interface Step {
        void split(String piece, boolean atStart, List<String> out);
    }

    /** No pre-tokenization: the whole segment is one piece (SentencePiece-style BPE without a pre-tokenizer). */
    static final PreTokenizer NONE = new PreTokenizer(List.of());

    private final List<Step> steps;

    PreTokenizer(List<Step> steps) {
        this.steps = List.copyOf(steps);
    }

    static PreTokenizer forName(String pre) {
        if (pre == null || pre.equals("gpt2") || pre.equals("default")) return new PreTokenizer(List.of(byteLevel(false, true)));
        switch (pre) {
            case "smollm": case "starcoder": case "refact": case "command-r": case "codeshell": case "exaone": case "minerva-7b":
                return new PreTokenizer(List.of(digits(true), byteLevel(false, true)));
            default:
                throw new IllegalArgumentException("unsupported pre-tokenizer " + pre + " (supported: gpt2, smollm and its StarCoder-style relatives)");
        }
    }

    /** Hugging Face's {@code ByteLevel}: optionally prefix a space to a piece not starting with one, then GPT-2's regex if {@code useRegex}. */
    static Step byteLevel(boolean addPrefixSpace, boolean useRegex) {
        return (piece, atStart, out) -> {
            String p = addPrefixSpace && !piece.startsWith(" ") ? " " + piece : piece;
            if (useRegex) isolate(GPT2, p, out);
            else out.add(p);
        };
    }

    /** Hugging Face's {@code Digits}: each numeric character its own piece, or runs of them when not {@code individual}. */
    static Step digits(boolean individual) {
        return (text, atStart, out) -> {
            int runStart = 0;
            for (int i = 0; i < text.length(); ) {
                int cp = text.codePointAt(i);
                int width = Character.charCount(cp);
                if (isNumeric(cp)) {
                    if (i > runStart) out.add(text.substring(runStart, i));
                    int end = i + width;
                    if (!individual) {
                        while (end < text.length() && isNumeric(text.codePointAt(end))) end += Character.charCount(text.codePointAt(end));
                    }
                    out.add(text.substring(i, end));
                    runStart = end;
                    i = end;
                    continue;
                }
                i += width;
            }
            if (runStart < text.length()) out.add(text.substring(runStart));
        };
    }

    /** Hugging Face's {@code Split} with behaviour {@code Isolated}: every match and every gap between matches is a piece. */
    static Step split(Pattern pattern) {
        return (piece, atStart, out) -> isolate(pattern, piece, out);
    }

    /**
     * Hugging Face's {@code Metaspace}: spaces become {@code replacement} ("▁"); the replacement is
     * prepended to a piece that does not start with it when {@code prependScheme} is {@code always},
     * or is {@code first} and the piece begins the text; {@code split} then cuts before every
     * replacement character (each piece starts with its "▁").
     */
    static Step metaspace(String replacement, String prependScheme, boolean split) {
        if (!List.of("always", "first", "never").contains(prependScheme)) {
            throw new IllegalArgumentException("Metaspace prepend_scheme " + prependScheme + " (always, first, never)");
        }
        return (piece, atStart, out) -> {
            String p = piece.replace(" ", replacement);
            boolean prepend = prependScheme.equals("always") || (prependScheme.equals("first") && atStart);
            if (prepend && !p.startsWith(replacement)) p = replacement + p;
            if (!split) {
                out.add(p);
                return;
            }
            int start = 0;
            for (int i = p.indexOf(replacement, 1); i >= 0; i = p.indexOf(replacement, i + replacement.length())) {
                if (i > start) out.add(p.substring(start, i));
                start = i;
            }
            if (start < p.length()) out.add(p.substring(start));
        };
    }

    List<String> split(String text) {
        return split(text, true);
    }

    /** The pieces of {@code text}; {@code atStart}: the text begins the input (not after an added token). */
    List<String> split(String text, boolean atStart) {
        List<String> pieces = List.of(text);
        for (Step step : steps) {
            List<String> next = new ArrayList<>();
            for (int i = 0; i < pieces.size(); i++) step.split(pieces.get(i), atStart && i == 0, next);
            pieces = next;
        }
        return pieces;
    }

    private static boolean isNumeric(int cp) {
        int type = Character.getType(cp);
        return type == Character.DECIMAL_DIGIT_NUMBER || type == Character.LETTER_NUMBER || type == Character.OTHER_NUMBER;
    }

    private static void isolate(Pattern pattern, String text, List<String> pieces) {
        Matcher m = pattern.matcher(text);
        int end = 0;
        while (m.find()) {
            if (m.end() == m.start()) continue; // empty matches cut nothing
            if (m.start() > end) pieces.add(text.substring(end, m.start()));
            pieces.add(m.group());
            end = m.end();
        }
        if (end < text.length()) pieces.add(text.substring(end));
    }
}
