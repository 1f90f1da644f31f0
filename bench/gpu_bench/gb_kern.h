/* gb_kern.h - kernel benchmarks of gpu_bench: AWQ matmuls vs copy bandwidth and cuBLAS. */
#ifndef GB_KERN_H
#define GB_KERN_H
/* Print the kernel table; exits on a CUDA error (bench programs may). decode_only: the
 * batch-1 and batch-8 GEMV rows only (A/B runs of the decode GEMV under an env switch). */
void gb_kernels(double copy_gbps, int decode_only);
#endif
