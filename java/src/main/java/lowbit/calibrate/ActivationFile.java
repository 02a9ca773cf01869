package lowbit.calibrate;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Block activations of the calibration samples on disk: {@code samples} matrices of {@code rows ×
 * dim} float32 values, little-endian, one after the other. Only the samples of one batch are in
 * memory at a time, so the pipeline's memory does not grow with the number of samples.
 */
final class ActivationFile implements AutoCloseable {
    private final FileChannel channel;
    private final int samples;
    private final int rows;
    private final int dim;

    private ActivationFile(FileChannel channel, int samples, int rows, int dim) {
        this.channel = channel;
        this.samples = samples;
        this.rows = rows;
        this.dim = dim;
    }

    static ActivationFile create(Path path, int samples, int rows, int dim) throws IOException {
        return new ActivationFile(FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.READ, StandardOpenOption.WRITE), samples, rows, dim);
    }

    static ActivationFile open(Path path, int samples, int rows, int dim) throws IOException {
        FileChannel ch = FileChannel.open(path, StandardOpenOption.READ);
        long expected = (long) samples * rows * dim * 4;
        if (ch.size() != expected) {
            ch.close();
            throw new IOException(path + " has " + ch.size() + " bytes, expected " + expected + " (" + samples + " samples of " + rows + "×" + dim + ")");
        }
        return new ActivationFile(ch, samples, rows, dim);
    }

    /** Samples {@code ids} stacked into one {@code ids.length·rows × dim} matrix. */
    double[] read(int[] ids) throws IOException {
        int per = rows * dim;
        double[] out = new double[ids.length * per];
        ByteBuffer buf = ByteBuffer.allocate(per * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < ids.length; i++) {
            check(ids[i]);
            buf.clear();
            long pos = (long) ids[i] * per * 4;
            while (buf.hasRemaining()) {
                if (channel.read(buf, pos + buf.position()) < 0) throw new IOException("unexpected end of activation file");
            }
            buf.flip();
            for (int j = 0; j < per; j++) out[i * per + j] = buf.getFloat();
        }
        return out;
    }

    /** Writes the stacked samples {@code ids} from {@code values}. */
    void write(int[] ids, double[] values) throws IOException {
        int per = rows * dim;
        if (values.length != ids.length * per) throw new IllegalArgumentException("expected " + ids.length * per + " values, got " + values.length);
        ByteBuffer buf = ByteBuffer.allocate(per * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < ids.length; i++) {
            check(ids[i]);
            buf.clear();
            for (int j = 0; j < per; j++) buf.putFloat((float) values[i * per + j]);
            buf.flip();
            long pos = (long) ids[i] * per * 4;
            while (buf.hasRemaining()) channel.write(buf, pos + buf.position());
        }
    }

    private void check(int id) {
        if (id < 0 || id >= samples) throw new IndexOutOfBoundsException("sample " + id + " of " + samples);
    }

    void sync() throws IOException {
        channel.force(true);
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
