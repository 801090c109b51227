# The emulated CUDA device (KFUSE_CUDA_EMULATION=ON): libkfuse_cuda with its kernels
# compiled by the host C++ compiler against the device language in emu/include, and
# the emulated runtime (emu/src) in place of libcudart. Included from the top level.

# Headers that come before the toolkit's: <mma.h>, <cub/block/...>, the device
# language; then the toolkit's own headers for the host API types and declarations.
# The host libraries: emulated cuBLAS, CUB device-wide and cuFFT (emu/emu_libs.cmake).
include(${PROJECT_SOURCE_DIR}/emu/emu_libs.cmake)

add_library(kfuse_emu_headers INTERFACE)
target_include_directories(kfuse_emu_headers BEFORE INTERFACE
  ${PROJECT_SOURCE_DIR}/emu/include)
target_include_directories(kfuse_emu_headers SYSTEM INTERFACE ${CUDAToolkit_INCLUDE_DIRS})

set(KFUSE_EMU_SOURCES
  emu/src/fiber.cpp
  emu/src/grid.cpp
  emu/src/runtime.cpp
  emu/src/launch_log.cpp
  ${KFUSE_EMU_LIB_SOURCES})

# The kernels are C++ here. Device code paths (KFUSE_EMULATED_DEVICE_CODE: the
# __*_rn branches of kernels/fuse/math.hpp etc.), the device language force-included as nvcc
# force-includes cuda_runtime.h, no contraction of a * b + c (the explicit _rn chains
# must round as written), type punning through shared tiles as the GPU allows it,
# and no warning for nvcc's #pragma unroll.
set_source_files_properties(${KFUSE_CUDA_SOURCES} PROPERTIES LANGUAGE CXX)
list(FILTER KFUSE_CUDA_SOURCES EXCLUDE REGEX "\\.cpp$")
set_source_files_properties(${KFUSE_CUDA_SOURCES} PROPERTIES
  COMPILE_OPTIONS "-xc++;-include;kfuse_emu/device.hpp;-ffp-contract=off;-fno-strict-aliasing;-Wno-unknown-pragmas"
  COMPILE_DEFINITIONS "KFUSE_EMULATED_DEVICE_CODE=1")

add_library(kfuse_cuda ${KFUSE_SOURCES} ${KFUSE_CUDA_SOURCES} src/core/device_cuda.cpp
                       ${KFUSE_EMU_SOURCES})
target_compile_definitions(kfuse_cuda PRIVATE KFUSE_CUDA_EMULATION=1)
target_link_libraries(kfuse_cuda PRIVATE kfuse_emu_headers Threads::Threads)
target_include_directories(kfuse_cuda PRIVATE ${PROJECT_SOURCE_DIR}/emu/src)
