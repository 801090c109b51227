# The emulated device's host libraries (issue 14, item 7): cuBLAS, CUB device-wide and cuFFT,
# implemented on the CPU with the real libraries' contracts. Include this file from the
# emulation build; it defines
#   KFUSE_EMU_LIB_SOURCES      the libraries' sources, to compile into the emulation's library
#                              (CUB's are header-only: emu/include/cub/device/*.cuh)
#   KFUSE_EMU_INCLUDE_DIR      emu/include: put it BEFORE the toolkit's headers, so that its
#                              cub/device headers shadow CCCL's
#   KFUSE_EMU_CUDA_INCLUDE_DIR the toolkit's headers (declarations and types only: no nvcc)
#   kfuse_emu_add_lib_tests(lib_target)
#                              registers the libraries' tests (ctest label emu), linked against
#                              lib_target, which must provide the libraries and the runtime
#                              (kfuse::emu::enqueue, cudaStreamCreateWithFlags, cudaStreamDestroy,
#                              cudaStreamSynchronize, cudaDeviceSynchronize)
set(KFUSE_EMU_LIB_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/lib/cublas.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/cufft.cpp)
# The GEMM's inner loop vectorises at -O3 only (a source property: it applies to targets
# defined in the directory that includes this file).
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/lib/cublas.cpp PROPERTIES COMPILE_OPTIONS -O3)
set(KFUSE_EMU_INCLUDE_DIR ${CMAKE_CURRENT_LIST_DIR}/include)
set(KFUSE_EMU_LIB_TEST_DIR ${CMAKE_CURRENT_LIST_DIR}/tests)
if(CUDAToolkit_INCLUDE_DIRS)
  set(_kfuse_emu_cuda_include ${CUDAToolkit_INCLUDE_DIRS})
else()
  set(_kfuse_emu_cuda_include /usr/local/cuda/include)
endif()
set(KFUSE_EMU_CUDA_INCLUDE_DIR ${_kfuse_emu_cuda_include} CACHE PATH
  "The CUDA toolkit's headers, for the emulated libraries' declarations and types")

function(kfuse_emu_add_lib_tests lib_target)
  if(NOT TARGET GTest::gtest_main)  # imported targets are visible in their directory only
    find_package(GTest REQUIRED)
  endif()
  foreach(name test_emu_cublas test_emu_cub test_emu_cufft)
    add_executable(${name} ${KFUSE_EMU_LIB_TEST_DIR}/${name}.cpp)
    target_include_directories(${name} BEFORE PRIVATE ${KFUSE_EMU_INCLUDE_DIR})
    target_include_directories(${name} SYSTEM PRIVATE ${KFUSE_EMU_CUDA_INCLUDE_DIR})
    target_link_libraries(${name} PRIVATE ${lib_target} GTest::gtest_main)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES LABELS emu)
  endforeach()
endfunction()
