// no_cuda.cpp -- what the CUDA entry points answer in a build without a CUDA compiler.
#include "backend.h"

namespace lowbit {

std::unique_ptr<Backend> make_cuda_backend(int) {
    throw Error(LOWBIT_ERR_UNSUPPORTED,
                "this liblowbit was built without CUDA (no CUDA compiler was found at build time); "
                "rebuild with CUDACXX pointing at nvcc, see README.md");
}

int cuda_device_count() { return 0; }

const char* cuda_build_info() { return "CUDA: not built"; }

int gemm_config_count() { return 0; }

const char* gemm_config_name(int) { return nullptr; }

}  // namespace lowbit
