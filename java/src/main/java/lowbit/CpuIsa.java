package lowbit;

/** Instruction-set levels of the CPU integer kernels; every level gives bit-identical results. */
public enum CpuIsa {
    SCALAR(0),
    AVX2(1),
    AVX512_VNNI(2);

    final int code;

    CpuIsa(int code) {
        this.code = code;
    }

    static CpuIsa of(int code) {
        for (CpuIsa isa : values()) {
            if (isa.code == code) {
                return isa;
            }
        }
        throw new IllegalArgumentException("unknown CPU ISA level " + code);
    }
}
