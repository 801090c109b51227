// KFUSE_HD marks math shared by the CPU path and the CUDA kernels: one definition,
// compiled by the host compiler for the CPU and by nvcc for the device.
#pragma once

#if defined(__CUDACC__)
#define KFUSE_HD __host__ __device__ __forceinline__
#else
#define KFUSE_HD inline
#endif
