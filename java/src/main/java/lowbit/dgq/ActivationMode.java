package lowbit.dgq;

/** How a DGQ layer quantizes its (smoothed) input to INT8 (symmetric, {@code lowbit.h}'s grid). */
public enum ActivationMode {
    /** One dynamic scale per token, {@code amax_t / 127}: the choice. */
    PER_TOKEN,
    /**
     * One static scale for the tensor from calibration, {@code max_j(m_j / s_j) / 127} (m_j the
     * calibrated channel maximum, s_j the smoothing factor): the authors' code, which instead keeps a
     * running minimum over calibration batches of the per-channel maxima.
     */
    STATIC_PER_TENSOR
}
