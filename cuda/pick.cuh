/* pick.cuh - the CUDA backend's sampling reduction (pick.cu; engine/backend.h "picking"):
 * the launch after the lm_head, the answers after the step's synchronization, and the row
 * read back for the host's fallback. Internal to cuda/. */
#ifndef CU_PICK_CUH
#define CU_PICK_CUH

#include <stdint.h>

extern "C" {
#include "backend.h"
}

/* one edit of one batch row (backend.h, eng_pick_edit, with its row's penalty settings) */
typedef struct cup_edit {
    int row, id;
    float delta;
    int count;
    float rep, freq, pres;
} cup_edit;

/* one reduced row: mode ENG_PICK_TOP (an edited argmax is a top 1 at t = 1), ENG_PICK_DRAW or
 * ENG_PICK_NUCLEUS; TOP's candidates go to [off, off + top) of the candidate arrays */
typedef struct cup_row {
    int row, mode, top, off;
    float t, top_p, min_p;
    double u;
} cup_row;

typedef struct cup_out {
    int id, n, n_cut;
    float lmax;
    double z;
} cup_out;

typedef struct cu_pick {
    cup_row *d_row, *h_row;   /* (max_seqs) */
    cup_out *d_out, *h_out;   /* (max_seqs) */
    int *d_cid, *h_cid;       /* (max_seqs * ENG_PICK_MAX) candidates, packed by row */
    float *d_cl, *h_cl;
    uint32_t *d_key;          /* (max_seqs, vocab) a reduced row's l = w / T as order keys */
    cup_edit *d_edit, *h_edit; /* (edit_cap), grown on demand */
    int edit_cap;
    int *slot_of;             /* (max_seqs) batch row -> reduced row, -1: none */
    int nrow, ncand;
    int rows_left;            /* rows of logits the last picking forward left for cup_row_copy */
} cu_pick;

struct cu_state;
int cup_alloc(char *err, struct cu_state *s);
void cup_free(struct cu_state *s);
/* Edits, reductions and the copies to the host, queued on s->st after the head. */
int cup_launch(char *err, struct cu_state *s, const eng_batch *b);
/* After the stream is synchronized: the answers into b->pick_out. */
void cup_collect(struct cu_state *s, const eng_batch *b);
/* Row i of the last picking forward's (edited) logits. */
int cup_row_copy(char *err, struct cu_state *s, int i, float *out);

#endif
