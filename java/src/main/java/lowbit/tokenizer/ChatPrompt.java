package lowbit.tokenizer;

/**
 * Chat prompts in the ChatML format of SmolLM2-Instruct's chat template: {@code
 * <|im_start|>role\ncontent<|im_end|>\n} per message, then {@code <|im_start|>assistant\n} for the
 * reply. Encode the result with {@link BpeTokenizer#encodeWithSpecialTokens}.
 */
public final class ChatPrompt {
    /** The system message SmolLM2's template inserts when none is given. */
    public static final String DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

    private ChatPrompt() {}

    /** A system message and one user message, ready for the assistant's reply. */
    public static String chatMl(String system, String user) {
        return "<|im_start|>system\n" + system + "<|im_end|>\n<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
    }
}
