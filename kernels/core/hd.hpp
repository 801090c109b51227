// KFUSE_HD marks math shared by the CPU path and the CUDA kernels: one definition,
// compiled by the host compiler for the CPU and by nvcc for the device.
//
// KFUSE_DEVICE_CODE is 1 where such math is compiled as device code: nvcc's device
// pass, and the kernels of the emulation build (KFUSE_EMULATED_DEVICE_CODE, set on
// kernels/*.cu only), which must run the device branches (the __*_rn intrinsics)
// that a GPU runs, not the host ones.
#pragma once

#if defined(__CUDA_ARCH__) || defined(KFUSE_EMULATED_DEVICE_CODE)
#define KFUSE_DEVICE_CODE 1
#else
#define KFUSE_DEVICE_CODE 0
#endif

#if defined(__CUDACC__)
#define KFUSE_HD __host__ __device__ __forceinline__
#elif defined(KFUSE_EMULATED_DEVICE_CODE)
// Always inlined, as nvcc's __forceinline__: a kernel file's device branch must not be
// merged by the linker with the CPU path's host branch of the same inline function.
#define KFUSE_HD inline __attribute__((always_inline))
#else
#define KFUSE_HD inline
#endif
