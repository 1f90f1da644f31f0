/* gb_model.h - whole-model benchmarks of gpu_bench (load, decode, prefill, streams). */
#ifndef GB_MODEL_H
#define GB_MODEL_H
/* Load the checkpoint in dir on the CUDA backend and print the model table; exits on error.
 * decode_only: the decode rows only (batch 1 at 128 / 2048, 8 streams): A/B runs. */
void gb_model(const char *dir, double copy_gbps, int decode_only);
/* Load dir, prefill 128 tokens and run 3 decode steps (a target for ncu); exits on error. */
void gb_profile_decode(const char *dir);
#endif
