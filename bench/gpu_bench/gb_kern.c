/* gb_kern.c - the AWQ matmul kernels on shisa-7B's shapes: decode (gemv/skinny kernels) as GB/s
 * against the copy probe, prefill (tiled kernel) as TFLOP/s against cuBLAS fp16 in the same
 * run. Weight bytes are what one call must stream (nibbles + scales/zeros). */
#define _POSIX_C_SOURCE 200809L /* setenv: the GEMV tuning knob */
#include <stdio.h>
#include <stdlib.h>

#include "gb_kern.h"

#ifdef AWQ_HAVE_CUDA
#include "cu.h"

static void fail(const char *what, const char *err) {
    fprintf(stderr, "gpu_bench: %s: %s\n", what, err);
    exit(1);
}

void gb_kernels(double copy_gbps) {
    static const struct { const char *name; int in, out; } shapes[] = {
        {"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gate_up", 4096, 28672}, {"down", 14336, 4096},
    };
    char err[AWQ_ERR_LEN];
    printf("### AWQ decode matmul vs copy bandwidth %.0f GB/s (graph replays of a rotation past L2)\n\n", copy_gbps);
    printf("gemv = registers GEMV (gemv.cu; default 8 tile pairs per block, PDL launch); wn4 = 4 pairs; occ3 = "
           "3 blocks per SM; ring = the earlier cp.async-ring GEMV; above 8 rows: skinny, and gemv in passes of 8\n\n");
    printf("| shape (in x out) | m | kernel | us | GB/s | of copy | cuBLAS fp16 us | speedup |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    static const int ms[] = {1, 4, 8, 16, 64};
    /* decode variants: name, kernel, AWQ_CUDA_GEMV_WN (NULL: default) */
    static const struct { const char *name; int kernel; const char *env, *val; } dv[] = {
        {"gemv (wn8, pdl)", CU_QMM_GEMV, NULL, NULL},
        {"gemv wn4", CU_QMM_GEMV, "AWQ_CUDA_GEMV_WN", "4"},
        {"gemv occ3", CU_QMM_GEMV, "AWQ_CUDA_GEMV_OCC", "3"},
        {"gemv no pdl", CU_QMM_GEMV, "AWQ_CUDA_NO_PDL", "1"},
        {"ring", CU_QMM_GEMV_RING, NULL, NULL},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
            double us = 0, bytes = 0, cub = 0;
            if (cu_bench_cublas(err, 0, ms[i], shapes[s].out, shapes[s].in, 11, &cub)) fail("cublas", err);
            /* above 8 rows: skinny, and the GEMV in passes of 8 rows (a weight re-read each) */
            size_t nv = ms[i] <= 8 ? sizeof dv / sizeof dv[0] : 2;
            for (size_t v = 0; v < nv; v++) {
                int kern = ms[i] <= 8 || v == 0 ? dv[v].kernel : CU_QMM_SKINNY;
                if ((ms[i] <= 8 || v == 0) && dv[v].env) setenv(dv[v].env, dv[v].val, 1);
                if (cu_bench_qmm(err, 0, shapes[s].in, shapes[s].out, ms[i], kern, 21, &us, &bytes))
                    fail("qmm", err);
                double gbps = bytes / (us * 1e-6) / 1e9;
                printf("| %s %dx%d | %d | %s | %.2f | %.0f | %.2f | %.2f | %.2fx |\n", shapes[s].name,
                       shapes[s].in, shapes[s].out, ms[i], ms[i] <= 8 || v == 0 ? dv[v].name : "skinny", us, gbps,
                       gbps / copy_gbps, cub, cub / us);
                fflush(stdout);
                if (dv[v].env) unsetenv(dv[v].env);
            }
        }
    printf("\n### AWQ prefill matmul (tiled kernel) vs cuBLAS fp16 (TFLOP/s)\n\n");
    printf("| shape (in x out) | m | AWQ us | AWQ TFLOP/s | cuBLAS us | cuBLAS TFLOP/s | ratio |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- |\n");
    static const int mt[] = {64, 256, 512, 2048};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t i = 0; i < sizeof mt / sizeof mt[0]; i++) {
            double us = 0, bytes = 0, cub = 0;
            if (cu_bench_qmm(err, 0, shapes[s].in, shapes[s].out, mt[i], CU_QMM_TILED, 11, &us, &bytes))
                fail("qmm", err);
            if (cu_bench_cublas(err, 0, mt[i], shapes[s].out, shapes[s].in, 11, &cub)) fail("cublas", err);
            double fl = 2.0 * mt[i] * shapes[s].in * shapes[s].out;
            printf("| %s %dx%d | %d | %.1f | %.0f | %.1f | %.0f | %.2f |\n", shapes[s].name,
                   shapes[s].in, shapes[s].out, mt[i], us, fl / us * 1e-6, cub, fl / cub * 1e-6, cub / us);
            fflush(stdout);
        }
    {
        double cub = 0;
        if (cu_bench_cublas(err, 0, 1, 120128, 4096, 11, &cub)) fail("cublas", err);
        double gbps = 120128.0 * 4096 * 2 / (cub * 1e-6) / 1e9;
        printf("\nlm_head fp16 GEMV through cuBLAS (120128 x 4096): %.1f us, %.0f GB/s (%.2f of copy)\n\n",
               cub, gbps, gbps / copy_gbps);
    }
}
#endif
