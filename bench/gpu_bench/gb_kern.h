/* gb_kern.h - kernel benchmarks of gpu_bench: AWQ matmuls vs copy bandwidth and cuBLAS. */
#ifndef GB_KERN_H
#define GB_KERN_H
/* Print the kernel table; exits on a CUDA error (bench programs may). */
void gb_kernels(double copy_gbps);
#endif
