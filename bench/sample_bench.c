/* sample_bench - time of one eng_samp_sample call over a vocabulary of random logits, per
 * sampling setting: the engine thread runs one per sequence per decode step, so at shisa's 120k
 * vocabulary it bounds what a stream can reach whatever the GPU does. Logits ~ N(0, sd) (a
 * trained model's are more peaked, which only shrinks the top-p nucleus).
 *
 *   sample_bench [--vocab N] [--sd S] [--reps N]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awq_util.h"
#include "plat.h"
#include "sample.h"

typedef struct setting {
    const char *name;
    float temperature, top_p, min_p;
    int top_k;
} setting;

int main(int argc, char **argv) {
    int vocab = 120128, reps = 50;
    double sd = 3.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--vocab") && i + 1 < argc) vocab = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sd") && i + 1 < argc) sd = atof(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: sample_bench [--vocab N] [--sd S] [--reps N]\n");
            return 2;
        }
    }
    if (vocab <= 0 || reps <= 0 || !(sd > 0)) {
        fprintf(stderr, "sample_bench: vocab, reps and sd must be positive\n");
        return 2;
    }
    char err[AWQ_ERR_LEN];
    float *lg = malloc(sizeof *lg * (size_t)vocab);
    eng_samp_scratch *sc = eng_samp_scratch_create(err, vocab);
    if (!lg || !sc) {
        fprintf(stderr, "sample_bench: %s\n", sc ? "out of memory" : err);
        return 1;
    }
    uint64_t x = 0x243f6a8885a308d3ull;
    for (int v = 0; v < vocab; v++) { /* Box-Muller from a xorshift stream */
        double u[2];
        for (int k = 0; k < 2; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            u[k] = ((double)(x >> 11) + 0.5) / 9007199254740992.0;
        }
        lg[v] = (float)(sd * sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]));
    }
    int32_t hist[64];
    for (int i = 0; i < 64; i++) hist[i] = (int32_t)((i * 7919) % vocab);
    static const setting set[] = {
        {"greedy", 0.0f, 1.0f, 0.0f, 0},
        {"daemon defaults: T 0.7, top-k 40, top-p 0.95, min-p 0.05", 0.7f, 0.95f, 0.05f, 40},
        {"T 0.7, top-p 0.95 (no top-k)", 0.7f, 0.95f, 0.0f, 0},
        {"T 0.7, min-p 0.05 (no top-k, no top-p)", 0.7f, 1.0f, 0.05f, 0},
        {"T 1.0, no truncation", 1.0f, 1.0f, 0.0f, 0},
    };
    printf("| setting (vocab %d, logits N(0, %.1f)) | ms per sampled token |\n| --- | --- |\n", vocab, sd);
    for (size_t k = 0; k < sizeof set / sizeof set[0]; k++) {
        eng_samp_params p;
        eng_samp_params_default(&p, NULL);
        p.temperature = set[k].temperature, p.top_k = set[k].top_k, p.top_p = set[k].top_p, p.min_p = set[k].min_p;
        p.has_seed = true, p.seed = 1;
        eng_samp *s = eng_samp_create(err, &p, vocab);
        if (!s) {
            fprintf(stderr, "sample_bench: %s\n", err);
            return 1;
        }
        eng_samp_result r;
        const uint64_t t0 = plat_now_ns();
        for (int i = 0; i < reps; i++)
            if (eng_samp_sample(err, s, sc, lg, hist, 64, &r)) {
                fprintf(stderr, "sample_bench: %s\n", err);
                return 1;
            }
        printf("| %s | %.3f |\n", set[k].name, (double)(plat_now_ns() - t0) / reps / 1e6);
        eng_samp_free(s);
    }
    eng_samp_scratch_free(sc);
    free(lg);
    return 0;
}
