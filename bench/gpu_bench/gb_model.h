/* gb_model.h - whole-model benchmarks of gpu_bench (load, decode, prefill, streams). */
#ifndef GB_MODEL_H
#define GB_MODEL_H
/* Load the checkpoint in dir on the CUDA backend and print the model table; exits on error.
 * decode_only: the decode rows only (batch 1 at 128 / 2048, 8 streams): A/B runs.
 * fp16_weights: the backend keeps fp16 weight copies for the dense path (prefill_fp16_weights). */
void gb_model(const char *dir, double copy_gbps, int decode_only, int fp16_weights);
/* Load dir, prefill nseq sequences of plen tokens in one batch, then run steps + 1 greedy decode
 * steps of all of them, or (steps 0) the same prefill twice (a target for ncu); exits on error. */
void gb_profile(const char *dir, int nseq, int plen, int steps, int fp16_weights);
/* Load dir and print decode tok/s through the generator with sampling (greedy, temperature,
 * top-p, top-k with a penalty) at 1 and 64 streams, reduced on the GPU vs whole rows. */
void gb_sampled(const char *dir);
#endif
