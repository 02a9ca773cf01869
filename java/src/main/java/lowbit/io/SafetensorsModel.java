package lowbit.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The tensors of a Hugging Face checkpoint: a single {@code model.safetensors}, or shards listed by
 * a {@code *.safetensors.index.json} whose {@code weight_map} maps tensor names to shard files.
 * Every tensor named in the index must exist in its shard, and no tensor may appear in two shards.
 */
public final class SafetensorsModel implements Closeable {
    private final Map<String, SafetensorsFile> byTensor;
    private final List<SafetensorsFile> files;

    private SafetensorsModel(Map<String, SafetensorsFile> byTensor, List<SafetensorsFile> files) {
        this.byTensor = byTensor;
        this.files = files;
    }

    /**
     * Opens a checkpoint given a {@code .safetensors} file, an index JSON, or a directory holding
     * either {@code model.safetensors.index.json} or {@code model.safetensors}.
     */
    public static SafetensorsModel open(Path path) throws IOException {
        if (Files.isDirectory(path)) {
            Path index = path.resolve("model.safetensors.index.json");
            path = Files.exists(index) ? index : path.resolve("model.safetensors");
        }
        if (path.getFileName().toString().endsWith(".json")) return openIndex(path);
        SafetensorsFile file = SafetensorsFile.open(path);
        Map<String, SafetensorsFile> byTensor = new LinkedHashMap<>();
        for (String name : file.tensors().keySet()) byTensor.put(name, file);
        return new SafetensorsModel(byTensor, List.of(file));
    }

    private static SafetensorsModel openIndex(Path index) throws IOException {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(index.toFile());
        } catch (IOException e) {
            throw new MalformedModelException("index " + index + " is not valid JSON: " + e.getMessage(), -1);
        }
        JsonNode weightMap = root == null ? null : root.get("weight_map");
        if (weightMap == null || !weightMap.isObject()) throw new MalformedModelException("index " + index + " has no weight_map object", -1);
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        Map<String, SafetensorsFile> byTensor = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, JsonNode> e : weightMap.properties()) {
                String shardName = e.getValue().asText();
                if (!e.getValue().isTextual() || shardName.isEmpty() || shardName.contains("/") || shardName.contains("\\")
                        || shardName.equals("..")) {
                    throw new MalformedModelException("index entry " + e.getKey() + " names an invalid shard " + e.getValue()
                            + " (must be a file name next to the index)", -1);
                }
                Path shardPath = index.resolveSibling(shardName);
                SafetensorsFile shard = shards.get(shardName);
                if (shard == null) {
                    shard = SafetensorsFile.open(shardPath);
                    shards.put(shardName, shard);
                }
                if (!shard.tensors().containsKey(e.getKey())) {
                    throw new MalformedModelException("index maps tensor " + e.getKey() + " to " + shardName + ", which does not hold it", -1);
                }
                byTensor.put(e.getKey(), shard);
            }
            for (SafetensorsFile shard : shards.values()) {
                for (String name : shard.tensors().keySet()) {
                    if (byTensor.get(name) != shard) {
                        throw new MalformedModelException("tensor " + name + " in shard " + shard.path().getFileName()
                                + " is not mapped to that shard by the index", -1);
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            for (SafetensorsFile f : shards.values()) f.close();
            throw e;
        }
        return new SafetensorsModel(Collections.unmodifiableMap(byTensor), new ArrayList<>(shards.values()));
    }

    /** All tensor names. */
    public java.util.Set<String> tensorNames() {
        return byTensor.keySet();
    }

    public SafetensorsTensorInfo tensor(String name) {
        return file(name).tensor(name);
    }

    /** The tensor converted to float32 (F32, F16, BF16). */
    public float[] readFloats(String name) throws IOException {
        return file(name).readFloats(name);
    }

    private SafetensorsFile file(String name) {
        SafetensorsFile f = byTensor.get(name);
        if (f == null) throw new IllegalArgumentException("no tensor " + name + " in this checkpoint");
        return f;
    }

    @Override
    public void close() throws IOException {
        for (SafetensorsFile f : files) f.close();
    }
}
