package lowbit.io;

import java.io.IOException;

/** Reads one GGUF metadata value of a given value type (see {@link GgufFile} for the Java mapping). */
final class GgufValueReader {
    static final int UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
            STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12;
    private static final int MAX_NESTING = 8;

    private GgufValueReader() {}

    /** Smallest encoded size of one value of {@code type}, used to reject impossible array counts. */
    private static int minSize(long type) {
        switch ((int) type) {
            case UINT8: case INT8: case BOOL: return 1;
            case UINT16: case INT16: return 2;
            case UINT32: case INT32: case FLOAT32: return 4;
            case UINT64: case INT64: case FLOAT64: case STRING: return 8;
            case ARRAY: return 12;
            default: return 1;
        }
    }

    static Object readValue(BoundedChannelReader in, long type, String key, int depth) throws IOException {
        long at = in.position();
        switch ((int) type) {
            case UINT8: return (long) in.u8(key);
            case INT8: return (long) in.i8(key);
            case UINT16: return (long) in.u16(key);
            case INT16: return (long) in.i16(key);
            case UINT32: return in.u32(key);
            case INT32: return (long) in.i32(key);
            case UINT64: case INT64: return in.i64(key);
            case FLOAT32: return (double) in.f32(key);
            case FLOAT64: return in.f64(key);
            case BOOL: {
                int b = in.u8(key);
                if (b > 1) throw new MalformedModelException("metadata " + key + ": bool byte is " + b, at);
                return b == 1;
            }
            case STRING: return in.string("value of " + key);
            case ARRAY: return readArray(in, key, depth);
            default:
                if (type < 0 || type > FLOAT64) {
                    throw new MalformedModelException("metadata " + key + " has unknown value type " + type, at - 4);
                }
                throw new AssertionError(type);
        }
    }

    private static Object readArray(BoundedChannelReader in, String key, int depth) throws IOException {
        if (depth >= MAX_NESTING) throw new MalformedModelException("metadata " + key + ": arrays nested too deeply", in.position());
        long typeAt = in.position();
        long elementType = in.u32("array element type of " + key);
        if (elementType > FLOAT64) {
            throw new MalformedModelException("metadata " + key + " has unknown array element type " + elementType, typeAt);
        }
        long countAt = in.position();
        long count = in.i64("array length of " + key);
        if (count < 0 || count > in.remaining() / minSize(elementType)) {
            throw new MalformedModelException("metadata " + key + ": array length " + Long.toUnsignedString(count)
                    + " runs beyond the end of the file", countAt);
        }
        int n = (int) count;
        switch ((int) elementType) {
            case STRING: {
                String[] values = new String[n];
                for (int i = 0; i < n; i++) values[i] = in.string(key + "[" + i + "]");
                return values;
            }
            case FLOAT32: case FLOAT64: {
                double[] values = new double[n];
                for (int i = 0; i < n; i++) values[i] = (Double) readValue(in, elementType, key, depth + 1);
                return values;
            }
            case BOOL: {
                boolean[] values = new boolean[n];
                for (int i = 0; i < n; i++) values[i] = (Boolean) readValue(in, elementType, key, depth + 1);
                return values;
            }
            case ARRAY: {
                Object[] values = new Object[n];
                for (int i = 0; i < n; i++) values[i] = readValue(in, elementType, key, depth + 1);
                return values;
            }
            default: {
                long[] values = new long[n];
                for (int i = 0; i < n; i++) values[i] = (Long) readValue(in, elementType, key, depth + 1);
                return values;
            }
        }
    }
}
