// gemm_table.h -- the GEMM dispatch table: which compiled kernel configuration runs a shape.
//
// Text format (version 1), one entry per line, '#' starts a comment:
//
//     lowbit-gemm-tuning 1              first non-comment line: format and version
//     arch sm90                         the kernel family the names refer to
//     device NVIDIA H100 80GB HBM3      where it was tuned (informational)
//     <m_max> <k> <n> <config> [...]    entries; further fields (timings) are ignored
//
// Lookup for (M, K, N): among the entries with this K and N, the one with the smallest
// m_max >= M, or the largest m_max when M exceeds them all. No entry for (K, N): the
// caller's heuristic decides. Written by the tuner (bench/.../GemmTune), parsed here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

struct GemmTableEntry {
    int64_t m_max, k, n;
    std::string config;
};

struct GemmTable {
    std::string arch;    // "sm90"
    std::string device;  // informational
    std::vector<GemmTableEntry> entries;

    // Throws Error(LOWBIT_ERR_INVALID_ARGUMENT) naming the line of the first problem.
    static GemmTable parse(const std::string& text, const std::string& source);

    // The configuration name for a shape, or nullptr when (K, N) has no entry.
    const std::string* lookup(int64_t m, int64_t k, int64_t n) const;
};

}  // namespace lowbit
