package lowbit.io;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.function.Predicate;
import java.util.zip.GZIPInputStream;

/** Extracts selected regular files of a gzip-compressed tar archive (ustar, GNU and pax headers). */
final class TarGzExtractor {
    private TarGzExtractor() {}

    /**
     * Copies every regular file whose archive path satisfies {@code wanted} into {@code target},
     * under its base name. Returns the number of files written.
     */
    static int extract(Path archive, Predicate<String> wanted, Path target) throws IOException {
        Files.createDirectories(target);
        int written = 0;
        try (InputStream in = new GZIPInputStream(Files.newInputStream(archive), 1 << 16)) {
            byte[] header = new byte[512];
            String longName = null;
            while (true) {
                if (!readBlock(in, header)) break;
                if (isZero(header)) break;
                String name = text(header, 0, 100);
                String prefix = text(header, 345, 155);
                if (!prefix.isEmpty() && "ustar".equals(text(header, 257, 5))) name = prefix + "/" + name;
                long size = octal(header, 124, 12);
                char kind = (char) header[156];
                byte[] body = null;
                if (kind == 'L' || kind == 'x') body = in.readNBytes((int) size);
                long padded = (size + 511) / 512 * 512;
                long skip = body == null ? padded : padded - size;
                if (kind == 'L') {
                    longName = new String(body, StandardCharsets.UTF_8).replace("\0", "");
                } else if (kind == 'x') {
                    String path = paxPath(new String(body, StandardCharsets.UTF_8));
                    if (path != null) longName = path;
                } else {
                    if (longName != null) name = longName;
                    longName = null;
                    if ((kind == '0' || kind == '\0') && wanted.test(name)) {
                        Path out = target.resolve(Path.of(name).getFileName().toString());
                        Path tmp = target.resolve(out.getFileName() + ".part");
                        try (var os = Files.newOutputStream(tmp)) {
                            copy(in, os, size);
                        }
                        Files.move(tmp, out, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
                        written++;
                        skip = padded - size;
                    }
                }
                in.skipNBytes(skip);
            }
        }
        return written;
    }

    private static String paxPath(String records) {
        for (String line : records.split("\n")) {
            int space = line.indexOf(' ');
            if (space > 0 && line.startsWith("path=", space + 1)) return line.substring(space + 6);
        }
        return null;
    }

    private static void copy(InputStream in, java.io.OutputStream out, long size) throws IOException {
        byte[] buf = new byte[1 << 16];
        long left = size;
        while (left > 0) {
            int n = in.read(buf, 0, (int) Math.min(buf.length, left));
            if (n < 0) throw new EOFException("archive ends inside a file");
            out.write(buf, 0, n);
            left -= n;
        }
    }

    private static boolean readBlock(InputStream in, byte[] block) throws IOException {
        int n = in.readNBytes(block, 0, block.length);
        if (n == 0) return false;
        if (n < block.length) throw new EOFException("archive ends inside a header");
        return true;
    }

    private static boolean isZero(byte[] block) {
        for (byte b : block) if (b != 0) return false;
        return true;
    }

    private static String text(byte[] b, int from, int length) {
        int end = from;
        while (end < from + length && b[end] != 0) end++;
        return new String(b, from, end - from, StandardCharsets.UTF_8);
    }

    private static long octal(byte[] b, int from, int length) throws IOException {
        String s = text(b, from, length).trim();
        if (s.isEmpty()) return 0;
        try {
            return Long.parseLong(s, 8);
        } catch (NumberFormatException e) {
            throw new IOException("bad size field in tar header: " + s);
        }
    }
}
