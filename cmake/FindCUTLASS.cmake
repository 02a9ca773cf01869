# Finds the CUTLASS C++ headers (header-only; nothing of CUTLASS is committed).
#
# Order: -DCUTLASS_DIR=... or the CUTLASS_DIR environment variable (a CUTLASS
# source tree with include/, or an unpacked nvidia-cutlass wheel); otherwise the
# pinned PyPI wheel nvidia-cutlass==${LOWBIT_CUTLASS_VERSION}, installed by pip
# into a cache outside the source tree ($LOWBIT_CACHE or ~/.cache/lowbit).
#
# Defines CUTLASS_INCLUDE_DIR, CUTLASS_UTIL_INCLUDE_DIR and the target CUTLASS::headers.
set(LOWBIT_CUTLASS_VERSION "4.2.0.0" CACHE STRING "nvidia-cutlass wheel version used when CUTLASS_DIR is unset")

if(NOT CUTLASS_DIR AND DEFINED ENV{CUTLASS_DIR})
    set(CUTLASS_DIR "$ENV{CUTLASS_DIR}")
endif()

if(NOT CUTLASS_DIR)
    if(DEFINED ENV{LOWBIT_CACHE})
        set(_cache "$ENV{LOWBIT_CACHE}")
    else()
        set(_cache "$ENV{HOME}/.cache/lowbit")
    endif()
    set(CUTLASS_DIR "${_cache}/cutlass-${LOWBIT_CUTLASS_VERSION}")
    if(NOT EXISTS "${CUTLASS_DIR}/cutlass_library/source/include/cutlass/cutlass.h")
        find_package(Python3 COMPONENTS Interpreter REQUIRED)
        message(STATUS "lowbit: installing nvidia-cutlass==${LOWBIT_CUTLASS_VERSION} into ${CUTLASS_DIR}")
        execute_process(
            COMMAND "${Python3_EXECUTABLE}" -m pip install --quiet --disable-pip-version-check --no-deps
                    --target "${CUTLASS_DIR}.tmp" "nvidia-cutlass==${LOWBIT_CUTLASS_VERSION}"
            RESULT_VARIABLE _pip_rc)
        if(NOT _pip_rc EQUAL 0)
            message(FATAL_ERROR "pip could not install nvidia-cutlass==${LOWBIT_CUTLASS_VERSION}; "
                                "set -DCUTLASS_DIR to a CUTLASS checkout or build with -DLOWBIT_CUDA=OFF")
        endif()
        file(REMOVE_RECURSE "${CUTLASS_DIR}")
        file(RENAME "${CUTLASS_DIR}.tmp" "${CUTLASS_DIR}")
    endif()
endif()

find_path(CUTLASS_INCLUDE_DIR cutlass/cutlass.h
    PATHS "${CUTLASS_DIR}/include" "${CUTLASS_DIR}/cutlass_library/source/include" NO_DEFAULT_PATH)
find_path(CUTLASS_UTIL_INCLUDE_DIR cutlass/util/device_memory.h
    PATHS "${CUTLASS_DIR}/tools/util/include" "${CUTLASS_DIR}/cutlass_library/source/tools/util/include"
    NO_DEFAULT_PATH)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUTLASS REQUIRED_VARS CUTLASS_INCLUDE_DIR CUTLASS_UTIL_INCLUDE_DIR)

if(CUTLASS_FOUND AND NOT TARGET CUTLASS::headers)
    add_library(CUTLASS::headers INTERFACE IMPORTED)
    set_target_properties(CUTLASS::headers PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${CUTLASS_INCLUDE_DIR};${CUTLASS_UTIL_INCLUDE_DIR}")
endif()
