package lowbit.io;

/** Element types of the safetensors format, with their byte sizes. */
public enum SafetensorsDType {
    F64(8), F32(4), F16(2), BF16(2), I64(8), I32(4), I16(2), I8(1), U64(8), U32(4), U16(2), U8(1), BOOL(1);

    private final int bytes;

    SafetensorsDType(int bytes) {
        this.bytes = bytes;
    }

    /** Bytes per element. */
    public int bytes() {
        return bytes;
    }

    /** Whether {@link SafetensorsFile#readFloats} converts this type to float. */
    public boolean isFloatConvertible() {
        return this == F32 || this == F16 || this == BF16;
    }

    /** The type named {@code name} in a safetensors header, or null when unknown. */
    static SafetensorsDType byName(String name) {
        for (SafetensorsDType t : values()) {
            if (t.name().equals(name)) return t;
        }
        return null;
    }
}
