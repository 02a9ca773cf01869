package lowbit.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * A Hugging Face checkpoint directory: {@code config.json} plus the safetensors weights (a single
 * {@code model.safetensors} or shards listed by {@code model.safetensors.index.json}). Tensors are
 * memory-mapped and converted one at a time ({@link #readFloats}), so loading never holds the file
 * in memory. Missing or ill-typed configuration keys, missing tensors and shape mismatches throw
 * {@link MalformedModelException} naming the key or tensor and the file.
 */
public final class HfCheckpoint implements Closeable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path directory;
    private final JsonNode config;
    private final SafetensorsModel tensors;

    private HfCheckpoint(Path directory, JsonNode config, SafetensorsModel tensors) {
        this.directory = directory;
        this.config = config;
        this.tensors = tensors;
    }

    /** Opens the checkpoint in {@code directory} (which must hold {@code config.json}). */
    public static HfCheckpoint open(Path directory) throws IOException {
        if (!Files.isDirectory(directory)) throw new IOException(directory + " is not a directory (expected a Hugging Face checkpoint)");
        JsonNode config = readConfig(directory.resolve("config.json"));
        return new HfCheckpoint(directory, config, SafetensorsModel.open(directory));
    }

    /** Reads and checks a {@code config.json}: it must be a JSON object. */
    static JsonNode readConfig(Path file) throws IOException {
        if (!Files.exists(file)) throw new IOException(file + " does not exist (a Hugging Face checkpoint needs config.json)");
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new MalformedModelException(file + " is not valid JSON: " + e.getMessage(), -1);
        }
        if (root == null || !root.isObject()) throw new MalformedModelException(file + " is not a JSON object", -1);
        return root;
    }

    public Path directory() {
        return directory;
    }

    /** The whole parsed {@code config.json}. */
    public JsonNode config() {
        return config;
    }

    public SafetensorsModel tensors() {
        return tensors;
    }

    /** Whether {@code key} is present and not null in config.json. */
    public boolean has(String key) {
        JsonNode v = config.get(key);
        return v != null && !v.isNull();
    }

    /** A required integer key. */
    public int intValue(String key) throws MalformedModelException {
        JsonNode v = required(key);
        if (!v.canConvertToExactIntegral() || !v.canConvertToInt()) throw bad(key, v, "an integer");
        return v.asInt();
    }

    /** An optional integer key. */
    public int intValue(String key, int absent) throws MalformedModelException {
        return has(key) ? intValue(key) : absent;
    }

    /** A required number. */
    public double doubleValue(String key) throws MalformedModelException {
        JsonNode v = required(key);
        if (!v.isNumber()) throw bad(key, v, "a number");
        return v.asDouble();
    }

    public double doubleValue(String key, double absent) throws MalformedModelException {
        return has(key) ? doubleValue(key) : absent;
    }

    public boolean booleanValue(String key, boolean absent) throws MalformedModelException {
        if (!has(key)) return absent;
        JsonNode v = config.get(key);
        if (!v.isBoolean()) throw bad(key, v, "true or false");
        return v.asBoolean();
    }

    public String stringValue(String key, String absent) throws MalformedModelException {
        if (!has(key)) return absent;
        JsonNode v = config.get(key);
        if (!v.isTextual()) throw bad(key, v, "a string");
        return v.asText();
    }

    private JsonNode required(String key) throws MalformedModelException {
        if (!has(key)) throw new MalformedModelException(configFile() + ": required key \"" + key + "\" is missing", -1);
        return config.get(key);
    }

    private MalformedModelException bad(String key, JsonNode v, String expected) {
        return new MalformedModelException(configFile() + ": \"" + key + "\" is " + v + ", expected " + expected, -1);
    }

    private Path configFile() {
        return directory.resolve("config.json");
    }

    public boolean hasTensor(String name) {
        return tensors.tensorNames().contains(name);
    }

    /**
     * Tensor {@code name} as float32, row-major, after checking that its shape (PyTorch order) is
     * {@code shape}.
     */
    public float[] readFloats(String name, long... shape) throws IOException {
        if (!hasTensor(name)) throw new MalformedModelException("checkpoint " + directory + " has no tensor " + name, -1);
        SafetensorsTensorInfo t = tensors.tensor(name);
        if (!Arrays.equals(t.shape(), shape)) {
            throw new MalformedModelException("tensor " + name + " has shape " + Arrays.toString(t.shape())
                    + ", config.json implies " + Arrays.toString(shape), -1);
        }
        if (!t.dtype().isFloatConvertible()) {
            throw new MalformedModelException("tensor " + name + " has dtype " + t.dtype() + "; weights must be F32, F16 or BF16", -1);
        }
        return tensors.readFloats(name);
    }

    @Override
    public void close() throws IOException {
        tensors.close();
    }
}
