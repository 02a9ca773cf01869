// gemm_table.cpp -- parsing and lookup of the GEMM dispatch table (format in gemm_table.h).
#include "gemm_table.h"

#include <sstream>

#include "backend.h"

namespace lowbit {

namespace {

[[noreturn]] void bad(const std::string& source, int line, const std::string& what) {
    throw Error(LOWBIT_ERR_INVALID_ARGUMENT,
                "GEMM tuning table " + source + ", line " + std::to_string(line) + ": " + what);
}

bool parse_positive(const std::string& s, int64_t& out) {
    if (s.empty() || s.size() > 15) return false;
    int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return v > 0;
}

}  // namespace

GemmTable GemmTable::parse(const std::string& text, const std::string& source) {
    GemmTable t;
    std::istringstream in(text);
    std::string line;
    int number = 0;
    bool header = false;
    while (std::getline(in, line)) {
        ++number;
        const auto hash = line.find('#');
        if (hash != std::string::npos) line.erase(hash);
        std::istringstream fields(line);
        std::vector<std::string> f;
        for (std::string w; fields >> w;) f.push_back(w);
        if (f.empty()) continue;
        if (!header) {
            if (f.size() != 2 || f[0] != "lowbit-gemm-tuning")
                bad(source, number, "expected the header 'lowbit-gemm-tuning 1'");
            if (f[1] != "1") bad(source, number, "format version " + f[1] + " is not supported (this library reads 1)");
            header = true;
            continue;
        }
        if (f[0] == "arch") {
            if (f.size() != 2) bad(source, number, "'arch' takes one value");
            t.arch = f[1];
            continue;
        }
        if (f[0] == "device") {
            t.device = line.substr(line.find("device") + 6);
            const auto b = t.device.find_first_not_of(" \t"), e = t.device.find_last_not_of(" \t\r");
            t.device = b == std::string::npos ? "" : t.device.substr(b, e - b + 1);
            continue;
        }
        GemmTableEntry e;
        if (f.size() < 4 || !parse_positive(f[0], e.m_max) || !parse_positive(f[1], e.k) ||
            !parse_positive(f[2], e.n))
            bad(source, number, "expected '<m_max> <k> <n> <config>' with positive integers, got '" + line + "'");
        e.config = f[3];
        for (const GemmTableEntry& o : t.entries)
            if (o.m_max == e.m_max && o.k == e.k && o.n == e.n)
                bad(source, number, "duplicate entry for m_max " + f[0] + ", k " + f[1] + ", n " + f[2]);
        t.entries.push_back(e);
    }
    if (!header) bad(source, number, "empty table: the header 'lowbit-gemm-tuning 1' is missing");
    return t;
}

const std::string* GemmTable::lookup(int64_t m, int64_t k, int64_t n) const {
    const GemmTableEntry* best = nullptr;  // smallest m_max >= m
    const GemmTableEntry* largest = nullptr;
    for (const GemmTableEntry& e : entries) {
        if (e.k != k || e.n != n) continue;
        if (e.m_max >= m && (best == nullptr || e.m_max < best->m_max)) best = &e;
        if (largest == nullptr || e.m_max > largest->m_max) largest = &e;
    }
    if (best == nullptr) best = largest;
    return best == nullptr ? nullptr : &best->config;
}

}  // namespace lowbit
