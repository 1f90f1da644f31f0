/* gb_model.h - whole-model benchmarks of gpu_bench (load, decode, prefill, streams). */
#ifndef GB_MODEL_H
#define GB_MODEL_H
/* Load the checkpoint in dir on the CUDA backend and print the model table; exits on error. */
void gb_model(const char *dir, double copy_gbps);
/* Load dir, prefill 128 tokens and run 3 decode steps (a target for ncu); exits on error. */
void gb_profile_decode(const char *dir);
#endif
