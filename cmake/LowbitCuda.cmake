# Optional CUDA backend.
#
# Enabled when CMake finds a CUDA compiler: CUDACXX or -DCMAKE_CUDA_COMPILER
# (cmake/cuda-from-pypi.sh installs nvcc 13.0 from PyPI wheels and prints its
# path). -DLOWBIT_CUDA=OFF forces a CPU-only build. Sets LOWBIT_WITH_CUDA.
option(LOWBIT_CUDA "Build the CUDA backend when a CUDA compiler is found" ON)
set(LOWBIT_CUDA_ARCHS "80;89;90a" CACHE STRING
    "CUDA architectures to compile for (80 = A100, 89 = L4/4090, 90a = H100 with wgmma)")

set(LOWBIT_WITH_CUDA OFF)
if(LOWBIT_CUDA)
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
        # The architectures are passed as explicit -gencode flags below: "90a"
        # (needed for wgmma) is not understood by every CMake this builds with.
        set(CMAKE_CUDA_ARCHITECTURES OFF)
        enable_language(CUDA)
        set(CMAKE_CUDA_STANDARD 17)
        set(CMAKE_CUDA_STANDARD_REQUIRED ON)
        find_package(CUDAToolkit REQUIRED)
        find_package(CUTLASS REQUIRED)
        set(LOWBIT_WITH_CUDA ON)
        message(STATUS "lowbit: CUDA backend ON (${CMAKE_CUDA_COMPILER}, archs ${LOWBIT_CUDA_ARCHS}, CUTLASS ${CUTLASS_INCLUDE_DIR})")
    else()
        message(STATUS "lowbit: no CUDA compiler found, building the CPU backend only")
    endif()
else()
    message(STATUS "lowbit: CUDA backend disabled (LOWBIT_CUDA=OFF)")
endif()

function(lowbit_cuda_target target)
    set(gencode "")
    foreach(arch IN LISTS LOWBIT_CUDA_ARCHS)
        list(APPEND gencode "-gencode=arch=compute_${arch},code=sm_${arch}")
    endforeach()
    # PTX of the oldest architecture as well, so GPUs newer than the list can JIT the kernels.
    list(GET LOWBIT_CUDA_ARCHS 0 oldest)
    string(REGEX REPLACE "a$" "" oldest "${oldest}")
    list(APPEND gencode "-gencode=arch=compute_${oldest},code=compute_${oldest}")
    string(REPLACE ";" "," archs_csv "${LOWBIT_CUDA_ARCHS}")
    # -DNDEBUG: device asserts make ptxas serialize wgmma (warning C7510).
    target_compile_options(${target} PRIVATE
        $<$<COMPILE_LANGUAGE:CUDA>:${gencode} --expt-relaxed-constexpr -DNDEBUG -Xcompiler=-fvisibility=hidden,-Wall,-Wextra>)
    target_compile_definitions(${target} PRIVATE LOWBIT_WITH_CUDA=1 LOWBIT_CUDA_ARCHS_STRING="${archs_csv}")
    # Static CUDA runtime: the library needs only the NVIDIA driver at run time.
    set_target_properties(${target} PROPERTIES CUDA_RUNTIME_LIBRARY Static CUDA_SEPARABLE_COMPILATION OFF)
    target_link_libraries(${target} PRIVATE CUDA::cudart_static CUTLASS::headers)
endfunction()
