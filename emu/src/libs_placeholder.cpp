// TEMPORARY: link-time placeholders for the host libraries of the emulated device
// (cuBLAS, cuFFT), until their CPU implementations (emu/lib/) are merged. Handles
// work, so that contexts can be created; every computation reports "not emulated
// yet". Delete this file with that merge.
#include <cublas_v2.h>
#include <cufft.h>

#include <cstdio>

namespace {
int g_handles = 0;
template <class R>
R not_emulated(const char* what, R status) {
  std::fprintf(stderr, "kfuse emulated device: %s is not emulated yet\n", what);
  return status;
}
}  // namespace

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  *handle = reinterpret_cast<cublasHandle_t>(&g_handles);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t) {
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t) {
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusName(cublasStatus_t) {
  return "CUBLAS_STATUS_NOT_SUPPORTED";
}
const char* cublasGetStatusString(cublasStatus_t) {
  return "not emulated yet";
}
cublasStatus_t cublasGemmEx_64(cublasHandle_t, cublasOperation_t, cublasOperation_t, int64_t,
                               int64_t, int64_t, const void*, const void*, cudaDataType, int64_t,
                               const void*, cudaDataType, int64_t, const void*, void*, cudaDataType,
                               int64_t, cublasComputeType_t, cublasGemmAlgo_t) {
  return not_emulated("cublasGemmEx_64", CUBLAS_STATUS_NOT_SUPPORTED);
}
cublasStatus_t cublasGemmStridedBatchedEx_64(cublasHandle_t, cublasOperation_t, cublasOperation_t,
                                             int64_t, int64_t, int64_t, const void*, const void*,
                                             cudaDataType, int64_t, long long int, const void*,
                                             cudaDataType, int64_t, long long int, const void*,
                                             void*, cudaDataType, int64_t, long long int, int64_t,
                                             cublasComputeType_t, cublasGemmAlgo_t) {
  return not_emulated("cublasGemmStridedBatchedEx_64", CUBLAS_STATUS_NOT_SUPPORTED);
}

cufftResult cufftCreate(cufftHandle* handle) {
  *handle = 1;
  return CUFFT_SUCCESS;
}
cufftResult cufftDestroy(cufftHandle) {
  return CUFFT_SUCCESS;
}
cufftResult cufftSetAutoAllocation(cufftHandle, int) {
  return CUFFT_SUCCESS;
}
cufftResult cufftSetWorkArea(cufftHandle, void*) {
  return CUFFT_SUCCESS;
}
cufftResult cufftSetStream(cufftHandle, cudaStream_t) {
  return CUFFT_SUCCESS;
}
cufftResult cufftMakePlanMany64(cufftHandle, int, long long int*, long long int*, long long int,
                                long long int, long long int*, long long int, long long int,
                                cufftType, long long int, size_t*) {
  return not_emulated("cufftMakePlanMany64", CUFFT_NOT_SUPPORTED);
}
cufftResult cufftExecR2C(cufftHandle, cufftReal*, cufftComplex*) {
  return not_emulated("cufftExecR2C", CUFFT_NOT_SUPPORTED);
}
cufftResult cufftExecC2R(cufftHandle, cufftComplex*, cufftReal*) {
  return not_emulated("cufftExecC2R", CUFFT_NOT_SUPPORTED);
}
