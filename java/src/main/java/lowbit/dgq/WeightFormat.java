package lowbit.dgq;

/** The 4-bit code format of DGQ weights; both expand to {@code W8 = (q − z)·S2} with {@code |W8| ≤ 127}. */
public enum WeightFormat {
    /** Signed INT4 codes {@code q ∈ [−8, 7]}, no zero point ({@code W8 = q·S2}): the format. */
    SYMMETRIC_INT4,
    /** Unsigned codes {@code q ∈ [0, 15]} with an INT8 zero point per group: the authors' code ({@code --w4w8}). */
    ASYMMETRIC_UINT4
}
