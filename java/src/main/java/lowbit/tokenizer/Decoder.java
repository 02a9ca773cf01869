package lowbit.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Hugging Face's decoders for {@code tokenizer.json}: token strings in, text out, as a chain of
 * steps over the list of token strings ({@code decode_chain}). Steps: {@code ByteLevel} (GPT-2's
 * byte alphabet back to bytes), {@code Replace}, {@code ByteFallback} (runs of {@code <0xNN>} tokens
 * back to UTF-8; invalid bytes become one U+FFFD each), {@code Fuse}, {@code Strip} and {@code
 * Metaspace} (the replacement character back to a space; the first token loses its leading space
 * unless the prepend scheme is {@code never}).
 */
final class Decoder {
    /** One step of the chain. */
    @FunctionalInterface
    interface Step {
        List<String> apply(List<String> tokens);
    }

    private final List<Step> steps;

    Decoder(List<Step> steps) {
        this.steps = List.copyOf(steps);
    }

    String decode(List<String> tokens) {
        for (Step s : steps) tokens = s.apply(tokens);
        return String.join("", tokens);
    }

    static Step byteLevel() {
        return tokens -> {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            for (String t : tokens) {
                for (int i = 0; i < t.length(); i++) {
                    int b = ByteLevelAlphabet.byteOf(t.charAt(i));
                    if (b >= 0) bytes.write(b);
                    else bytes.writeBytes(String.valueOf(t.charAt(i)).getBytes(StandardCharsets.UTF_8));
                }
            }
            return List.of(bytes.toString(StandardCharsets.UTF_8));
        };
    }

    static Step replace(Pattern pattern, String content) {
        String literal = Matcher.quoteReplacement(content);
        return perToken(t -> pattern.matcher(t).replaceAll(literal));
    }

    static Step byteFallback() {
        return tokens -> {
            List<String> out = new ArrayList<>(tokens.size());
            ByteArrayOutputStream run = new ByteArrayOutputStream();
            int runLength = 0;
            for (String t : tokens) {
                int b = byteToken(t);
                if (b >= 0) {
                    run.write(b);
                    runLength++;
                    continue;
                }
                if (runLength > 0) out.add(utf8OrReplacement(run.toByteArray()));
                run.reset();
                runLength = 0;
                out.add(t);
            }
            if (runLength > 0) out.add(utf8OrReplacement(run.toByteArray()));
            return out;
        };
    }

    static Step fuse() {
        return tokens -> List.of(String.join("", tokens));
    }

    /** Removes up to {@code start} leading and {@code stop} trailing occurrences of {@code content} from every token. */
    static Step strip(String content, int start, int stop) {
        return perToken(t -> {
            int from = 0, to = t.length();
            for (int i = 0; i < start && t.startsWith(content, from) && from + content.length() <= to; i++) from += content.length();
            for (int i = 0; i < stop && to - content.length() >= from && t.startsWith(content, to - content.length()); i++) to -= content.length();
            return t.substring(from, to);
        });
    }

    static Step metaspace(String replacement, boolean stripFirstSpace) {
        return tokens -> {
            List<String> out = new ArrayList<>(tokens.size());
            for (int i = 0; i < tokens.size(); i++) {
                String t = tokens.get(i).replace(replacement, " ");
                if (i == 0 && stripFirstSpace && t.startsWith(" ")) t = t.substring(1);
                out.add(t);
            }
            return out;
        };
    }

    /** The byte of a {@code <0xNN>} token (two upper- or lower-case hex digits), -1 for any other token. */
    static int byteToken(String t) {
        if (t.length() != 6 || !t.startsWith("<0x") || t.charAt(5) != '>') return -1;
        int hi = Character.digit(t.charAt(3), 16), lo = Character.digit(t.charAt(4), 16);
        return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
    }

    private static String utf8OrReplacement(byte[] bytes) {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            return "\uFFFD".repeat(bytes.length);
        }
    }

    private static Step perToken(UnaryOperator<String> f) {
        return tokens -> {
            List<String> out = new ArrayList<>(tokens.size());
            for (String t : tokens) out.add(f.apply(t));
            return out;
        };
    }
}
