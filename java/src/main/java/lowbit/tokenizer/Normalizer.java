package lowbit.tokenizer;

import java.util.List;
import java.util.Locale;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Hugging Face's text normalizers, applied to each ordinary-text segment before pre-tokenization
 * (added tokens are matched on the raw text and not normalized): a chain of string-to-string steps,
 * as the {@code Sequence} normalizer runs them. The steps real checkpoints use: Unicode forms {@code
 * NFC}/{@code NFD}/{@code NFKC}/{@code NFKD} (Qwen2 ships NFC), {@code Lowercase}, {@code Strip},
 * {@code Replace} (string or regex) and {@code Prepend} (Llama 2 and TinyLlama: {@code
 * Prepend("▁")} then {@code Replace(" ", "▁")}).
 */
final class Normalizer {
    /** No normalization. */
    static final Normalizer NONE = new Normalizer(List.of());

    private final List<UnaryOperator<String>> steps;

    Normalizer(List<UnaryOperator<String>> steps) {
        this.steps = List.copyOf(steps);
    }

    String apply(String text) {
        for (UnaryOperator<String> s : steps) text = s.apply(text);
        return text;
    }

    boolean isIdentity() {
        return steps.isEmpty();
    }

    static UnaryOperator<String> unicode(java.text.Normalizer.Form form) {
        return t -> java.text.Normalizer.normalize(t, form);
    }

    static UnaryOperator<String> lowercase() {
        return t -> t.toLowerCase(Locale.ROOT);
    }

    /** Removes Unicode white space at the left and/or right end. */
    static UnaryOperator<String> strip(boolean left, boolean right) {
        return t -> {
            int from = 0, to = t.length();
            while (left && from < to && Character.isWhitespace(t.codePointAt(from))) from += Character.charCount(t.codePointAt(from));
            while (right && to > from && Character.isWhitespace(t.codePointBefore(to))) to -= Character.charCount(t.codePointBefore(to));
            return t.substring(from, to);
        };
    }

    /** Every match of {@code pattern} (a literal string or a regex) becomes {@code content}. */
    static UnaryOperator<String> replace(Pattern pattern, String content) {
        String literal = Matcher.quoteReplacement(content);
        return t -> pattern.matcher(t).replaceAll(literal);
    }

    /** Prepends {@code prefix} to a non-empty text (whatever it starts with, as Hugging Face does). */
    static UnaryOperator<String> prepend(String prefix) {
        return t -> t.isEmpty() ? t : prefix + t;
    }
}
