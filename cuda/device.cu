/* device.cu - device discovery for the engine's backend choice and for tests. */
#include <string.h>

#include "helpers.cuh"
#include "internal.cuh"

extern "C" {
#include "cu.h"
}

int cu_device_count(void) {
    int n = 0;
    /* No driver, no device, or a driver too old for this runtime: all mean "no CUDA here". */
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky-free error so later calls start clean */
        return 0;
    }
    return n;
}

int cu_gemv_build(void) { return cuq_gemv_stream_ok() ? (cuq_gemv_wgmma_ok() ? 2 : 1) : 0; }

int cu_device_info(char *err, int dev, char *name, size_t name_len, size_t *free_b, size_t *total_b) {
    int prev = 0;
    CU_RET(err, cudaGetDevice(&prev));
    cudaDeviceProp p;
    CU_RET(err, cudaGetDeviceProperties(&p, dev));
    if (name && name_len) {
        strncpy(name, p.name, name_len - 1);
        name[name_len - 1] = 0;
    }
    if (free_b || total_b) {
        size_t f = 0, t = 0;
        CU_RET(err, cudaSetDevice(dev));
        cudaError_t e = cudaMemGetInfo(&f, &t);
        cudaSetDevice(prev);
        if (e != cudaSuccess)
            return awq_seterr(err, AWQ_EDEVICE, "cuda: cudaMemGetInfo failed: %s", cudaGetErrorName(e));
        if (free_b) *free_b = f;
        if (total_b) *total_b = t;
    }
    return 0;
}
