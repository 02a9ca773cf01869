package lowbit.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Splits text into the pieces that BPE encodes separately, as selected by a GGUF file's {@code
 * tokenizer.ggml.pre}. {@code gpt2} (and a missing value) uses GPT-2's regex; {@code smollm} (also
 * StarCoder-family and a few others, as in llama.cpp) first isolates every numeric character, then
 * applies GPT-2's regex to the rest — the same as Hugging Face's {@code Digits(individual_digits)}
 * followed by {@code ByteLevel}.
 */
final class PreTokenizer {
    private static final Pattern GPT2 = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
            Pattern.UNICODE_CHARACTER_CLASS);

    private final boolean splitDigits;

    private PreTokenizer(boolean splitDigits) {
        this.splitDigits = splitDigits;
    }

    static PreTokenizer forName(String pre) {
        if (pre == null || pre.equals("gpt2") || pre.equals("default")) return new PreTokenizer(false);
        switch (pre) {
            case "smollm": case "starcoder": case "refact": case "command-r": case "codeshell": case "exaone": case "minerva-7b":
                return new PreTokenizer(true);
            default:
                throw new IllegalArgumentException("unsupported pre-tokenizer " + pre + " (supported: gpt2, smollm and its StarCoder-style relatives)");
        }
    }

    List<String> split(String text) {
        List<String> pieces = new ArrayList<>();
        if (!splitDigits) {
            regexSplit(text, pieces);
            return pieces;
        }
        int runStart = 0;
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            int width = Character.charCount(cp);
            if (isNumeric(cp)) {
                if (i > runStart) regexSplit(text.substring(runStart, i), pieces);
                pieces.add(text.substring(i, i + width));
                runStart = i + width;
            }
            i += width;
        }
        if (runStart < text.length()) regexSplit(text.substring(runStart), pieces);
        return pieces;
    }

    private static boolean isNumeric(int cp) {
        int type = Character.getType(cp);
        return type == Character.DECIMAL_DIGIT_NUMBER || type == Character.LETTER_NUMBER || type == Character.OTHER_NUMBER;
    }

    private static void regexSplit(String text, List<String> pieces) {
        Matcher m = GPT2.matcher(text);
        int end = 0;
        while (m.find()) {
            if (m.start() > end) pieces.add(text.substring(end, m.start())); // unreachable: the regex covers every character
            pieces.add(m.group());
            end = m.end();
        }
        if (end < text.length()) pieces.add(text.substring(end));
    }
}
