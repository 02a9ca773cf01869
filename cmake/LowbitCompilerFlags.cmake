# Host compiler settings for liblowbit.
#
# The integer kernels are compiled once per instruction-set level and chosen at
# run time (cpu/isa.cpp): a source named *_avx2.cpp gets AVX2 code generation,
# *_avx512.cpp AVX-512 BW/VL + VNNI, *_avx512vpopcnt.cpp AVX-512 + VPOPCNTDQ
# (a separate run-time check); everything else stays baseline x86-64, so
# the library loads on any x86-64 CPU.
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
    set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

find_package(Threads REQUIRED)

function(lowbit_cpu_flags target sources)
    # No FMA contraction: the epilogue's float arithmetic is defined step by
    # step (lowbit.h) and must give the same bits on every ISA path.
    target_compile_options(${target} PRIVATE
        $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -ffp-contract=off -fno-math-errno>)
    target_link_libraries(${target} PRIVATE Threads::Threads)
    foreach(src IN LISTS sources)
        if(src MATCHES "_avx512\\.cpp$")
            set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS
                "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx512vnni;-mavx2;-mbmi2;-mpopcnt")
        elseif(src MATCHES "_avx512vpopcnt\\.cpp$")
            # AVX-512 VPOPCNTDQ kernels: called only after their own run-time
            # check (cpu/bitplane_isa.cpp), never by the ISA level alone.
            set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS
                "-mavx512f;-mavx512vpopcntdq;-mpopcnt")
        elseif(src MATCHES "_avx2\\.cpp$")
            set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "-mavx2;-mbmi2;-mpopcnt")
        endif()
    endforeach()
    # Static libstdc++ keeps the jar loadable on hosts with an older libstdc++.
    target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc -Wl,--no-undefined)
endfunction()
