package lowbit.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;

/**
 * Sequential little-endian reader over a file channel that knows the file size: every read first
 * checks that the bytes exist and otherwise throws {@link MalformedModelException} naming what was
 * being read and where.
 */
final class BoundedChannelReader {
    private static final int BUFFER_BYTES = 1 << 16;

    private final FileChannel channel;
    private final long fileSize;
    private final ByteBuffer buffer = ByteBuffer.allocate(BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    private long bufferStart; // file offset of buffer index 0
    private long position;

    BoundedChannelReader(FileChannel channel) throws IOException {
        this.channel = channel;
        this.fileSize = channel.size();
        buffer.limit(0);
    }

    long position() {
        return position;
    }

    long fileSize() {
        return fileSize;
    }

    long remaining() {
        return fileSize - position;
    }

    /** Throws unless {@code bytes} more bytes exist after the current position. */
    void require(long bytes, String what) throws MalformedModelException {
        if (bytes < 0 || bytes > fileSize - position) {
            throw new MalformedModelException(
                    "truncated or corrupt: " + what + " needs " + Long.toUnsignedString(bytes) + " bytes but only "
                            + (fileSize - position) + " remain in the file", position);
        }
    }

    private ByteBuffer window(int bytes, String what) throws IOException {
        require(bytes, what);
        int index = (int) (position - bufferStart);
        if (index < 0 || index + bytes > buffer.limit()) {
            buffer.clear();
            bufferStart = position;
            long want = Math.min(BUFFER_BYTES, fileSize - position);
            buffer.limit((int) want);
            while (buffer.hasRemaining()) {
                if (channel.read(buffer, bufferStart + buffer.position()) < 0) {
                    throw new MalformedModelException("unexpected end of file while reading " + what, position);
                }
            }
            index = 0;
        }
        buffer.position(index);
        position += bytes;
        return buffer;
    }

    int u8(String what) throws IOException {
        return window(1, what).get() & 0xFF;
    }

    int i8(String what) throws IOException {
        return window(1, what).get();
    }

    int u16(String what) throws IOException {
        return window(2, what).getShort() & 0xFFFF;
    }

    int i16(String what) throws IOException {
        return window(2, what).getShort();
    }

    long u32(String what) throws IOException {
        return window(4, what).getInt() & 0xFFFFFFFFL;
    }

    int i32(String what) throws IOException {
        return window(4, what).getInt();
    }

    long i64(String what) throws IOException {
        return window(8, what).getLong();
    }

    float f32(String what) throws IOException {
        return window(4, what).getFloat();
    }

    double f64(String what) throws IOException {
        return window(8, what).getDouble();
    }

    /** A GGUF string: uint64 byte length, then UTF-8 bytes. */
    String string(String what) throws IOException {
        long at = position;
        long length = i64("length of " + what);
        if (length < 0 || length > fileSize - position) {
            throw new MalformedModelException("length " + Long.toUnsignedString(length) + " of " + what
                    + " runs beyond the end of the file (" + (fileSize - position) + " bytes remain)", at);
        }
        byte[] bytes = new byte[(int) Math.min(length, Integer.MAX_VALUE - 8)];
        if (bytes.length != length) throw new MalformedModelException(what + " is longer than 2 GB", at);
        int done = 0;
        while (done < bytes.length) {
            int chunk = Math.min(BUFFER_BYTES, bytes.length - done);
            window(chunk, what).get(bytes, done, chunk);
            done += chunk;
        }
        return new String(bytes, StandardCharsets.UTF_8);
    }
}
