/* test_model.c - the checkpoint loader (engine/model.c, engine/config.c): tiny checkpoints are
 * written from C into a temp directory in exactly the AutoAWQ GEMM layout, loaded, and then
 * broken one way at a time; each bad input must give its code and a message naming the file,
 * the tensor and the reason. Also config.json parsing on its own and the dequantization
 * reference against a hand-packed example. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "awq_util.h"
#include "config.h"
#include "harness.h"
#include "model.h"
#include "plat.h"

#ifdef _WIN32
#include <process.h>
/* mingw has no mkdtemp: a directory named after the pid, in the working directory (the build
 * tree under ctest) */
static char *mkdtemp(char *tmpl) {
    snprintf(tmpl, 256, "awq-test-model-%d", _getpid());
    return plat_mkdirs(NULL, tmpl, 0700) == 0 ? tmpl : NULL;
}
#endif

static char err[AWQ_ERR_LEN];
static char root[256];
static int dir_no;

/* ------------------------------------------------------------------ a checkpoint writer ---- */

typedef struct tt {
    char name[96];
    const char *dtype; /* safetensors spelling */
    int esize;
    int nd;
    long long shape[2];
    int shard;
    long long begin; /* forced data offset, or -1 for "right after the previous tensor" */
} tt;

typedef struct ck {
    char dir[320];
    /* dims of the tiny model: hidden 16, intermediate 32, 2 layers, 2 heads, 1 kv head, vocab 40, group 8 */
    int hidden, inter, layers, heads, kv, vocab, group;
    bool tie;
    const char *arch;
    const char *quant;   /* quantization_config text, or NULL for none in config.json */
    const char *extra;   /* extra config.json fields, e.g. "\"rope_scaling\":{}," */
    const char *raw;     /* raw header entries appended to shard 0, e.g. ",\"x\":{...}" */
    int shards;          /* 1: model.safetensors unless index forced */
    bool index;          /* write the index even for one shard */
    tt t[64];
    int n;
} ck;

static void add(ck *c, int shard, const char *dtype, int esize, long long d0, long long d1, const char *name) {
    tt *t = &c->t[c->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->esize = esize;
    t->nd = d1 < 0 ? 1 : 2;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->shard = shard;
    t->begin = -1;
}

/* A fresh checkpoint description with the standard tensor list; layer L goes to shard
 * L * shards / layers, embed to the first shard, norm and lm_head to the last. */
static void ck_init(ck *c, int shards) {
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s/m%d", root, ++dir_no);
    c->hidden = 16, c->inter = 32, c->layers = 2, c->heads = 2, c->kv = 1, c->vocab = 40, c->group = 8;
    c->arch = "MistralForCausalLM";
    c->quant = "{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":8,\"zero_point\":true,\"version\":\"gemm\"}";
    c->extra = "";
    c->shards = shards;
}

static void ck_tensors(ck *c) {
    int hd = c->hidden / c->heads;
    char nm[96];
    add(c, 0, "F16", 2, c->vocab, c->hidden, "model.embed_tokens.weight");
    for (int L = 0; L < c->layers; L++) {
        int s = L * c->shards / c->layers;
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", L);
        add(c, s, "F16", 2, c->hidden, -1, nm);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", L);
        add(c, s, "F16", 2, c->hidden, -1, nm);
        const char *ln[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                             "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
        int in[7] = {c->hidden, c->hidden, c->hidden, c->heads * hd, c->hidden, c->hidden, c->inter};
        int out[7] = {c->heads * hd, c->kv * hd, c->kv * hd, c->hidden, c->inter, c->inter, c->hidden};
        for (int k = 0; k < 7; k++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.qweight", L, ln[k]);
            add(c, s, "I32", 4, in[k], out[k] / 8, nm);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.qzeros", L, ln[k]);
            add(c, s, "I32", 4, in[k] / c->group, out[k] / 8, nm);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.scales", L, ln[k]);
            add(c, s, "F16", 2, in[k] / c->group, out[k], nm);
        }
    }
    add(c, c->shards - 1, "F16", 2, c->hidden, -1, "model.norm.weight");
    if (!c->tie) add(c, c->shards - 1, "F16", 2, c->vocab, c->hidden, "lm_head.weight");
}

static tt *ck_find(ck *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->t[i].name, name)) return &c->t[i];
    return NULL;
}

static void shard_name(const ck *c, int s, char *out, size_t cap) {
    if (c->shards == 1 && !c->index) snprintf(out, cap, "model.safetensors");
    else snprintf(out, cap, "model-%05d-of-%05d.safetensors", s + 1, c->shards);
}

static void write_text(const ck *c, const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", c->dir, name);
    FILE *f = fopen(p, "wb");
    fputs(text, f);
    fclose(f);
}

static long long nbytes(const tt *t) { return t->shape[0] * (t->nd > 1 ? t->shape[1] : 1) * t->esize; }

/* Write config.json, the shards (header padded to 8) and, when sharded, the index. */
static void ck_write(ck *c) {
    if (plat_mkdirs(NULL, c->dir, 0755)) exit(3);
    char cfg[2048];
    char q[600] = "";
    if (c->quant) snprintf(q, sizeof q, ",\"quantization_config\":%s", c->quant);
    snprintf(cfg, sizeof cfg,
             "{\"architectures\":[\"%s\"],%s\"hidden_size\":%d,\"intermediate_size\":%d,"
             "\"num_hidden_layers\":%d,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"vocab_size\":%d,"
             "\"max_position_embeddings\":256,\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"sliding_window\":null,"
             "\"tie_word_embeddings\":%s,\"bos_token_id\":1,\"eos_token_id\":[2,3],\"hidden_act\":\"silu\","
             "\"torch_dtype\":\"float16\"%s}",
             c->arch, c->extra, c->hidden, c->inter, c->layers, c->heads, c->kv, c->vocab, c->tie ? "true" : "false", q);
    write_text(c, "config.json", cfg);
    awq_buf idx = {0};
    if (awq_buf_puts(&idx, "{\"metadata\":{\"total_size\":0},\"weight_map\":{")) exit(3);
    for (int s = 0; s < c->shards; s++) {
        char sn[64], hdr[16384], p[512];
        shard_name(c, s, sn, sizeof sn);
        size_t o = (size_t)snprintf(hdr, sizeof hdr, "{\"__metadata__\":{\"format\":\"pt\"}");
        long long off = 0, end = 0;
        for (int i = 0; i < c->n; i++) {
            tt *t = &c->t[i];
            if (t->shard != s) continue;
            long long b = t->begin >= 0 ? t->begin : off;
            off = b + nbytes(t);
            if (off > end) end = off;
            if (t->nd == 1)
                o += (size_t)snprintf(hdr + o, sizeof hdr - o, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],\"data_offsets\":[%lld,%lld]}",
                                      t->name, t->dtype, t->shape[0], b, off);
            else
                o += (size_t)snprintf(hdr + o, sizeof hdr - o,
                                      ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],\"data_offsets\":[%lld,%lld]}",
                                      t->name, t->dtype, t->shape[0], t->shape[1], b, off);
            if (awq_buf_printf(&idx, "%s\"%s\":\"%s\"", idx.data[idx.len - 1] == '{' ? "" : ",", t->name, sn)) exit(3);
        }
        if (s == 0 && c->raw) o += (size_t)snprintf(hdr + o, sizeof hdr - o, "%s", c->raw);
        o += (size_t)snprintf(hdr + o, sizeof hdr - o, "}");
        while (o % 8) hdr[o++] = ' ';
        snprintf(p, sizeof p, "%s/%s", c->dir, sn);
        FILE *f = fopen(p, "wb");
        uint8_t len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)o >> (8 * i));
        fwrite(len8, 1, 8, f);
        fwrite(hdr, 1, o, f);
        for (long long i = 0; i < end; i++) fputc((int)((i * 31 + 7) & 0xff), f); /* recognisable data */
        fclose(f);
    }
    if (awq_buf_puts(&idx, "}}")) exit(3);
    if (c->shards > 1 || c->index) write_text(c, "model.safetensors.index.json", idx.data);
    awq_buf_free(&idx);
}

/* Load c->dir; returns the code (model freed), message in err. */
static int try_load(const ck *c) {
    eng_model *m = NULL;
    err[0] = 0;
    int rc = eng_model_load(err, c->dir, &m);
    if (rc == 0 && !m) rc = 999;
    if (rc != 0 && m) rc = 998;
    eng_model_free(m);
    return rc;
}

/* Standard checkpoint, one mutation applied by the caller between init and write. */
#define FRESH(c, shards) (ck_init(&(c), (shards)), ck_tensors(&(c)))

static void file_path(const ck *c, const char *name, char *out, size_t cap) { snprintf(out, cap, "%s/%s", c->dir, name); }

/* Overwrite len bytes at off in dir/name. */
static void patch(const ck *c, const char *name, long off, const void *p, size_t len) {
    char path[512];
    file_path(c, name, path, sizeof path);
    FILE *f = fopen(path, "r+b");
    fseek(f, off, SEEK_SET);
    fwrite(p, 1, len, f);
    fclose(f);
}

/* Replace the first occurrence of from with to in dir/name. */
static void replace_in(const ck *c, const char *name, const char *from, const char *to) {
    char path[512], *text = NULL;
    size_t len;
    file_path(c, name, path, sizeof path);
    if (plat_read_file(NULL, path, 1 << 20, &text, &len)) exit(3);
    char *hit = strstr(text, from);
    if (!hit) {
        fprintf(stderr, "replace_in: '%s' not in %s\n", from, name);
        exit(3);
    }
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, (size_t)(hit - text), f);
    fputs(to, f);
    fputs(hit + strlen(from), f);
    fclose(f);
    free(text);
}

static int cfg_parse(const char *json, eng_config *cfg) {
    err[0] = 0;
    return eng_config_parse(err, json, strlen(json), NULL, 0, cfg);
}

/* A minimal valid config with one field spliced in front (it wins over the later default). */
static int cfg_with(const char *field, eng_config *cfg) {
    char j[1024];
    snprintf(j, sizeof j,
             "{%s\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":16,\"intermediate_size\":32,"
             "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"vocab_size\":40,"
             "\"quantization_config\":{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":8,\"version\":\"gemm\"}}",
             field);
    return cfg_parse(j, cfg);
}

static void test_load_ok(void) {
    ck c;
    eng_model *m = NULL;

    CASE("model-1.1", "a valid two-shard checkpoint loads; every pointer lands in the mapping");
    FRESH(c, 2);
    ck_write(&c);
    write_text(&c, "generation_config.json", "{\"temperature\":0.6,\"top_p\":0.9,\"do_sample\":true,\"max_new_tokens\":64}");
    CHECK_EQ(eng_model_load(err, c.dir, &m), 0);
    CHECK(m != NULL);
    if (m) {
        CHECK_EQ(m->cfg.hidden, 16);
        CHECK_EQ(m->cfg.head_dim, 8);
        CHECK_EQ(m->cfg.kv_heads, 1);
        CHECK_EQ(m->cfg.bos_id, 1);
        CHECK_EQ(m->cfg.n_eos, 2);
        CHECK_EQ(m->cfg.eos_ids[1], 3);
        CHECK_EQ(m->cfg.sliding_window, 0);
        CHECK_EQ(m->cfg.group_size, 8);
        CHECK_STR(m->cfg.quant_version, "gemm");
        CHECK_STR(m->cfg.model_type, "mistral");
        CHECK_EQ(m->n_shards, 2);
        CHECK_STR(m->shard_names[0], "model-00001-of-00002.safetensors");
        CHECK_EQ(m->n_tensors, 3 + 2 * 23);
        for (int i = 1; i < m->n_tensors; i++) CHECK(strcmp(m->tensors[i - 1].name, m->tensors[i].name) < 0);
        const eng_tensor *e = eng_model_tensor(m, "model.embed_tokens.weight");
        CHECK(e && e->data == (const void *)m->embed && e->shard == 0 && e->nbytes == 40 * 16 * 2);
        CHECK(e && ((const uint8_t *)e->data)[0] == 7 && ((const uint8_t *)e->data)[1] == 38); /* pattern i*31+7 */
        CHECK(m->lm_head != m->embed && m->lm_head == eng_model_tensor(m, "lm_head.weight")->data);
        CHECK(m->layers[1].down.in == 32 && m->layers[1].down.out == 16 && m->layers[1].down.group == 8);
        CHECK(m->layers[1].k.out == 8 && m->layers[0].o.in == 16);
        const eng_tensor *qz = eng_model_tensor(m, "model.layers.1.mlp.down_proj.qzeros");
        CHECK(qz && qz->data == (const void *)m->layers[1].down.qzeros && qz->shard == 1);
        CHECK(m->layers[0].attn_norm == eng_model_tensor(m, "model.layers.0.input_layernorm.weight")->data);
        size_t sum = 0;
        for (int i = 0; i < c.n; i++) sum += (size_t)nbytes(&c.t[i]);
        CHECK_EQ(m->weight_bytes, sum);
        CHECK(eng_model_tensor(m, "model.layers.2.mlp.up_proj.qweight") == NULL);
        CHECK(m->gen.has_temperature && !m->gen.has_top_k && m->gen.do_sample && m->gen.max_new_tokens == 64);
        /* the pages dropped after a GPU upload come back from the file when read */
        uint8_t before[64];
        memcpy(before, m->embed, sizeof before);
        eng_model_release_pages(m);
        CHECK(memcmp(before, m->embed, sizeof before) == 0);
        CHECK(((const uint8_t *)m->embed)[0] == 7);
        CHECK_NEAR(m->gen.top_p, 0.9, 1e-6);
#ifdef _WIN32 /* absolute there: a drive ("Z:\\...") */
        CHECK(m->dir[1] == ':' && m->dir[2] == '\\');
#else
        CHECK(m->dir[0] == '/');
#endif
    }
    eng_model_free(m);
    m = NULL;

    CASE("model-1.2", "a single-file model.safetensors without index is accepted");
    FRESH(c, 1);
    ck_write(&c);
    CHECK_EQ(try_load(&c), 0);
    c.index = true; /* and a one-shard index too */
    ck_write(&c);
    CHECK_EQ(try_load(&c), 0);

    CASE("model-1.3", "tied embeddings: no lm_head, lm_head == embed; a stray lm_head is ignored");
    ck_init(&c, 2);
    c.tie = true;
    ck_tensors(&c);
    ck_write(&c);
    CHECK_EQ(eng_model_load(err, c.dir, &m), 0);
    if (m) CHECK(m->lm_head == m->embed && m->cfg.tie_embeddings);
    eng_model_free(m);
    m = NULL;
    add(&c, 1, "F16", 2, 40, 16, "lm_head.weight");
    ck_write(&c);
    CHECK_EQ(try_load(&c), 0);

    CASE("model-1.4", "quant_config.json fallback with the old key names is accepted");
    FRESH(c, 1);
    c.quant = NULL;
    ck_write(&c);
    write_text(&c, "quant_config.json", "{\"zero_point\":true,\"q_group_size\":8,\"w_bit\":4,\"version\":\"GEMM\"}");
    CHECK_EQ(eng_model_load(err, c.dir, &m), 0);
    if (m) CHECK(m->cfg.group_size == 8 && m->cfg.bits == 4 && !strcmp(m->cfg.quant_version, "gemm"));
    eng_model_free(m);
    m = NULL;

    CASE("model-1.5", "an unexpected extra tensor is ignored but still validated and listed");
    FRESH(c, 2);
    add(&c, 1, "BF16", 2, 4, -1, "model.rotary_emb.inv_freq");
    ck_write(&c);
    CHECK_EQ(eng_model_load(err, c.dir, &m), 0);
    if (m) CHECK(eng_model_tensor(m, "model.rotary_emb.inv_freq") != NULL);
    eng_model_free(m);
    m = NULL;
    FRESH(c, 2);
    c.raw = ",\"junk\":{\"dtype\":\"U8\",\"shape\":[7],\"data_offsets\":[0,3]}";
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model-00001-of-00002.safetensors: junk: 3 bytes of data but dtype U8 x shape needs 7");
}

static void test_load_bad_files(void) {
    ck c;
    char sn2[] = "model-00002-of-00002.safetensors", path[512];

    CASE("model-2.1", "a truncated shard names the file, the tensor and the span");
    FRESH(c, 2);
    ck_write(&c);
    file_path(&c, sn2, path, sizeof path);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    if (truncate(path, size - 10)) exit(3);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model-00002-of-00002.safetensors: lm_head.weight: data span [");
    char want[64];
    snprintf(want, sizeof want, "past end of file (size %ld)", size - 10);
    CHECK_CONTAINS(err, want);

    CASE("model-2.2", "header length past the end of the file, and above 100 MB");
    FRESH(c, 2);
    ck_write(&c);
    uint8_t len8[8] = {0x80, 0xf0, 0xfa, 0x02, 0, 0, 0, 0}; /* 50000000 */
    patch(&c, sn2, 0, len8, 8);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model-00002-of-00002.safetensors: header length 50000000 past end of file");
    uint8_t big8[8] = {0, 0, 0, 0, 1, 0, 0, 0}; /* 4 GiB */
    patch(&c, sn2, 0, big8, 8);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model-00002-of-00002.safetensors: header length 4294967296 exceeds the 100 MB cap");

    CASE("model-2.3", "overlapping spans");
    FRESH(c, 2);
    ck_find(&c, "model.layers.0.self_attn.q_proj.qzeros")->begin = 8;
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model-00001-of-00002.safetensors: model.layers.0.self_attn.q_proj.qzeros: data span [8,");
    CHECK_CONTAINS(err, "overlaps model.embed_tokens.weight [0,1280)");

    CASE("model-2.4", "integer overflow in a shape product");
    FRESH(c, 2);
    c.raw = ",\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}";
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model-00001-of-00002.safetensors: x: shape product overflows");

    CASE("model-2.5", "invalid JSON in a shard header, config.json, the index, generation_config.json");
    FRESH(c, 2);
    ck_write(&c);
    patch(&c, sn2, 8, "[", 1);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model-00002-of-00002.safetensors: header is not valid JSON");
    FRESH(c, 2);
    ck_write(&c);
    write_text(&c, "config.json", "{\"architectures\": [\"MistralForCausalLM\"");
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "config.json: invalid JSON near byte");
    FRESH(c, 2);
    ck_write(&c);
    write_text(&c, "model.safetensors.index.json", "{\"weight_map\": {\"a\": ");
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model.safetensors.index.json: invalid JSON");
    FRESH(c, 2);
    ck_write(&c);
    write_text(&c, "generation_config.json", "{\"temperature\": }");
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "generation_config.json: invalid JSON near byte 16");

    CASE("model-2.6", "empty shard file, missing shard, no shards, no config.json, no directory");
    FRESH(c, 2);
    ck_write(&c);
    file_path(&c, sn2, path, sizeof path);
    if (truncate(path, 0)) exit(3);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model-00002-of-00002.safetensors: file too short (0 bytes)");
    unlink(path);
    CHECK_EQ(try_load(&c), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "model-00002-of-00002.safetensors: shard not found (named by model.safetensors.index.json)");
    file_path(&c, "model.safetensors.index.json", path, sizeof path);
    unlink(path);
    CHECK_EQ(try_load(&c), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "neither model.safetensors.index.json nor model.safetensors found");
    file_path(&c, "config.json", path, sizeof path);
    unlink(path);
    CHECK_EQ(try_load(&c), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "config.json: not found in");
    snprintf(c.dir, sizeof c.dir, "%s/does-not-exist", root);
    CHECK_EQ(try_load(&c), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "does-not-exist");

    CASE("model-2.7", "shard names from the index may not leave the directory");
    const char *bad[] = {"../x.safetensors", "/etc/passwd", "sub/x.safetensors", "a\\\\b.safetensors", "C:x", ".."};
    for (int i = 0; i < 6; i++) {
        FRESH(c, 2);
        ck_write(&c);
        char to[128];
        snprintf(to, sizeof to, "\"lm_head.weight\":\"%s\"", bad[i]);
        replace_in(&c, "model.safetensors.index.json", "\"lm_head.weight\":\"model-00002-of-00002.safetensors\"", to);
        CHECK_EQ(try_load(&c), AWQ_EPERM);
        CHECK_CONTAINS(err, "model.safetensors.index.json: weight_map: lm_head.weight: shard name '");
        CHECK_CONTAINS(err, "leaves the model directory");
    }

    CASE("model-2.8", "the index must agree with the shards; a tensor may live in one shard only");
    FRESH(c, 2);
    ck_write(&c);
    replace_in(&c, "model.safetensors.index.json", "\"lm_head.weight\":\"model-00002-of-00002.safetensors\"",
               "\"lm_head.weight\":\"model-00001-of-00002.safetensors\"");
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model-00001-of-00002.safetensors: lm_head.weight: not in this shard, though "
                        "model.safetensors.index.json says so");
    FRESH(c, 2);
    add(&c, 0, "F16", 2, 16, -1, "model.norm.weight");
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model.norm.weight: tensor also in");

    CASE("model-2.9", "misaligned fp16/int32 data is refused");
    FRESH(c, 1);
    ck_find(&c, "model.embed_tokens.weight")->begin = 1;
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "model.safetensors: "); /* the first misaligned by name: lm_head.weight */
    CHECK_CONTAINS(err, ".weight: data at file offset");
    CHECK_CONTAINS(err, "is not 2-byte aligned");
}

static void test_load_bad_tensors(void) {
    ck c;

    CASE("model-3.1", "wrong dtype");
    FRESH(c, 2);
    ck_find(&c, "model.layers.1.mlp.up_proj.qweight")->dtype = "F32";
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model-00002-of-00002.safetensors: model.layers.1.mlp.up_proj.qweight: dtype F32, expected I32");

    CASE("model-3.2", "shape disagreeing with config.json");
    FRESH(c, 2);
    ck_find(&c, "model.layers.0.self_attn.k_proj.scales")->shape[1] = 16;
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model-00001-of-00002.safetensors: model.layers.0.self_attn.k_proj.scales: shape [2, 16] "
                        "disagrees with config.json (expected [2, 8])");
    FRESH(c, 1);
    ck_find(&c, "model.norm.weight")->nd = 2;
    ck_find(&c, "model.norm.weight")->shape[1] = 1;
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "model.safetensors: model.norm.weight: shape [16, 1] disagrees with config.json (expected [16])");
    /* the config says 3 layers, the shards hold 2 */
    FRESH(c, 1);
    c.layers = 3;
    ck_write(&c);
    c.layers = 2;
    CHECK_EQ(try_load(&c), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "model.safetensors: tensor model.layers.2.input_layernorm.weight missing");

    CASE("model-3.3", "a missing tensor, and a missing lm_head when not tied");
    FRESH(c, 2);
    snprintf(ck_find(&c, "model.layers.1.mlp.gate_proj.scales")->name, 96, "unused.x");
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "model.safetensors.index.json: tensor model.layers.1.mlp.gate_proj.scales missing");
    FRESH(c, 2);
    c.n--; /* lm_head is last */
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "tensor lm_head.weight missing");

    CASE("model-3.4", "unknown architecture, non-awq quantization, group size not dividing, rope_scaling");
    FRESH(c, 1);
    c.arch = "GPT2LMHeadModel";
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "config.json: unsupported architecture 'GPT2LMHeadModel'");
    FRESH(c, 1);
    c.quant = "{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":8}";
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "config.json: unsupported quantization 'gptq' (only awq)");
    FRESH(c, 1);
    c.quant = "{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":12,\"version\":\"gemm\"}";
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "config.json: group size 12 does not divide self_attn.q_proj in-features 16");
    FRESH(c, 1);
    c.extra = "\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0},";
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "config.json: rope_scaling is not supported");
    FRESH(c, 1);
    c.quant = NULL;
    ck_write(&c);
    CHECK_EQ(try_load(&c), AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "unsupported quantization: none");
}

static void test_config(void) {
    eng_config cfg;

    CASE("model-4.1", "config.json defaults follow transformers; token ids as int, list or null");
    CHECK_EQ(cfg_with("", &cfg), 0);
    CHECK_EQ(cfg.kv_heads, 2);
    CHECK_EQ(cfg.head_dim, 8);
    CHECK_EQ(cfg.max_pos, 2048);
    CHECK_NEAR(cfg.rope_theta, 10000, 0);
    CHECK_NEAR(cfg.rms_eps, 1e-6, 1e-12);
    CHECK(!cfg.tie_embeddings && cfg.zero_point && cfg.bos_id == -1 && cfg.n_eos == 0);
    CHECK_STR(cfg.model_type, "llama");
    CHECK_EQ(cfg_with("\"bos_token_id\":[5,6],\"eos_token_id\":7,", &cfg), 0);
    CHECK(cfg.bos_id == 5 && cfg.n_eos == 1 && cfg.eos_ids[0] == 7);
    CHECK_EQ(cfg_with("\"bos_token_id\":null,\"eos_token_id\":null,\"sliding_window\":null,\"head_dim\":null,", &cfg), 0);
    CHECK(cfg.bos_id == -1 && cfg.n_eos == 0 && cfg.head_dim == 8);
    CHECK_EQ(cfg_with("\"head_dim\":16,\"num_key_value_heads\":1,", &cfg), 0); /* heads*hd != hidden is fine */
    CHECK(cfg.head_dim == 16 && cfg.kv_heads == 1);

    CASE("model-4.2", "config.json bounds and types, each naming the field");
    CHECK_EQ(cfg_parse("{\"architectures\":[\"LlamaForCausalLM\"]}", &cfg), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "config.json: hidden_size missing");
    CHECK_EQ(cfg_with("\"hidden_size\":0,", &cfg), AWQ_ERANGE);
    CHECK_CONTAINS(err, "config.json: hidden_size: 0 outside [1, 65536]");
    CHECK_EQ(cfg_with("\"hidden_size\":\"16\",", &cfg), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "config.json: hidden_size: not an integer");
    CHECK_EQ(cfg_with("\"vocab_size\":2000000,", &cfg), AWQ_ERANGE);
    CHECK_CONTAINS(err, "vocab_size: 2000000 outside [1, 1048576]");
    CHECK_EQ(cfg_with("\"num_hidden_layers\":1e9,", &cfg), AWQ_ERANGE);
    CHECK_EQ(cfg_with("\"num_attention_heads\":3,", &cfg), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "num_attention_heads 3 does not divide hidden_size 16");
    CHECK_EQ(cfg_with("\"num_key_value_heads\":4,", &cfg), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "num_key_value_heads 4 does not divide num_attention_heads 2");
    CHECK_EQ(cfg_with("\"eos_token_id\":40,", &cfg), AWQ_ERANGE);
    CHECK_CONTAINS(err, "config.json: eos_token_id: 40 outside the vocabulary [0, 40)");
    CHECK_EQ(cfg_with("\"eos_token_id\":[1,2,3,4,5,6,7,8,9],", &cfg), AWQ_ERANGE);
    CHECK_CONTAINS(err, "eos_token_id: more than 8 ids");
    CHECK_EQ(cfg_with("\"eos_token_id\":\"</s>\",", &cfg), AWQ_EFORMAT);
    CHECK_EQ(cfg_with("\"rms_norm_eps\":-1,", &cfg), AWQ_ERANGE);
    CHECK_CONTAINS(err, "rms_norm_eps: -1 outside");
    CHECK_EQ(cfg_with("\"tie_word_embeddings\":1,", &cfg), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "tie_word_embeddings: not true or false");
    CHECK_EQ(cfg_with("\"hidden_size\":24,\"num_attention_heads\":2,\"num_key_value_heads\":1,", &cfg), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "self_attn.k_proj out-features 12 not a multiple of 8");
    CHECK_EQ(cfg_with("\"head_dim\":7,", &cfg), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "head_dim 7 is odd");
    CHECK_EQ(cfg_with("\"hidden_act\":\"gelu\",", &cfg), AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "hidden_act must be \"silu\"");
    CHECK_EQ(cfg_with("\"architectures\":[\"MixtralForCausalLM\"],", &cfg), AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "unsupported architecture 'MixtralForCausalLM'");
    CHECK_EQ(cfg_with("\"architectures\":\"LlamaForCausalLM\",", &cfg), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "architectures missing or not a list of strings");
    CHECK_EQ(cfg_parse("[]", &cfg), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "config.json: not a JSON object");
    CHECK_EQ(cfg_parse("{} {}", &cfg), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "trailing bytes at byte 3");

    CASE("model-4.3", "quantization: bits, version, zero_point, method; quant_config.json fallback");
    CHECK_EQ(cfg_with("\"quantization_config\":{\"quant_method\":\"awq\",\"bits\":8,\"group_size\":8},", &cfg),
             AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "unsupported quantization: 8 bits (only 4)");
    CHECK_EQ(cfg_with("\"quantization_config\":{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":8,\"version\":\"gemv\"},",
                      &cfg),
             AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "unsupported quantization version 'gemv' (only gemm)");
    CHECK_EQ(cfg_with("\"quantization_config\":{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":8,\"zero_point\":false},",
                      &cfg),
             AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "zero_point false");
    CHECK_EQ(cfg_with("\"quantization_config\":{\"bits\":4,\"group_size\":8},", &cfg), AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "quant_method missing");
    CHECK_EQ(cfg_with("\"quantization_config\":{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":-1},", &cfg),
             AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "group size -1");
    {
        const char *j = "{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":16,\"intermediate_size\":32,"
                        "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"vocab_size\":40}";
        const char *q = "{\"zero_point\":true,\"q_group_size\":16,\"w_bit\":4}";
        CHECK_EQ(eng_config_parse(err, j, strlen(j), q, strlen(q), &cfg), 0);
        CHECK(cfg.group_size == 16 && !strcmp(cfg.quant_version, "gemm") && cfg.max_pos == 131072);
        CHECK_EQ(eng_config_parse(err, j, strlen(j), "{\"w_bit\":", 9, &cfg), AWQ_EFORMAT);
        CHECK_CONTAINS(err, "quant_config.json: invalid JSON near byte");
        const char *q3 = "{\"w_bit\":3,\"q_group_size\":16}";
        CHECK_EQ(eng_config_parse(err, j, strlen(j), q3, strlen(q3), &cfg), AWQ_EUNSUPPORTED);
        CHECK_CONTAINS(err, "quant_config.json: unsupported quantization: 3 bits");
    }

    CASE("model-4.4", "generation_config.json fields and their errors");
    eng_gen_defaults g;
    const char *gj = "{\"temperature\":0,\"top_k\":40,\"repetition_penalty\":1.1,\"top_p\":null}";
    CHECK_EQ(eng_gen_parse(err, gj, strlen(gj), &g), 0);
    CHECK(g.has_temperature && g.temperature == 0 && g.has_top_k && g.top_k == 40 && !g.has_top_p);
    CHECK(g.has_repetition_penalty && !g.has_do_sample);
    CHECK_EQ(eng_gen_parse(err, "{\"temperature\":\"hot\"}", 21, &g), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "generation_config.json: temperature: not a number");
    CHECK_EQ(eng_gen_parse(err, "{\"top_p\":1.5}", 13, &g), AWQ_ERANGE);
    CHECK_CONTAINS(err, "generation_config.json: top_p: 1.5 outside");
    CHECK_EQ(eng_gen_parse(err, "{\"top_k\":-1}", 12, &g), AWQ_ERANGE);
    CHECK_CONTAINS(err, "top_k: -1 outside");
}

static void test_dequant(void) {
    CASE("model-5.1", "ORDER and REV are inverse permutations");
    for (int i = 0; i < 8; i++) CHECK_EQ(ENG_AWQ_REV[ENG_AWQ_ORDER[i]], i);

    CASE("model-5.2", "dequant reference against a hand-packed AWQ GEMM example");
    /* in 4, out 16 (two packed columns), group 2. Packed by hand: nibble i of a column holds
     * out column 8c + ORDER[i], ORDER = {0,2,4,6,1,3,5,7}.
     *   q = 0,1,...,7 in columns 0..7  -> nibbles 0,2,4,6,1,3,5,7 -> 0x75316420
     *   q = 7-n                        -> nibbles 7,5,3,1,6,4,2,0 -> 0x02461357 */
    const int32_t qweight[4 * 2] = {
        0x75316420, 0x11111111,         /* row 0: q = n | q = 1 */
        (int32_t)0xFFFFFFFF, 0x00000000, /* row 1: q = 15 | q = 0 */
        (int32_t)0x88888888, 0x75316420, /* row 2 (group 1): q = 8 | q = n */
        0x02461357, 0x02461357,         /* row 3: q = 7 - n | q = 7 - n */
    };
    const int32_t qzeros[2 * 2] = {
        0x11111111, 0x00000000, /* group 0: z = 1 | z = 0 */
        0x75316420, 0x88888888, /* group 1: z = n | z = 8 */
    };
    uint16_t scales[2 * 16];
    for (int n = 0; n < 16; n++) {
        scales[n] = n < 8 ? 0x3800 : 0x3C00;                /* group 0: 0.5 | 1.0 */
        scales[16 + n] = (n % 2) ? 0x4000 : 0x3C00;         /* group 1: odd 2.0, even 1.0 */
    }
    eng_qlinear l = {.in = 4, .out = 16, .group = 2, .qweight = qweight, .qzeros = qzeros, .scales = scales};
    float w[16];
    int bad = 0;
    for (int k = 0; k < 4; k++) {
        eng_qlinear_dequant_row(&l, k, w);
        for (int n = 0; n < 16; n++) {
            int j = n % 8;
            float s1 = (n % 2) ? 2.0f : 1.0f, want;
            switch (k) {
            case 0: want = n < 8 ? (j - 1) * 0.5f : 1.0f; break;
            case 1: want = n < 8 ? 14 * 0.5f : 0.0f; break;
            case 2: want = n < 8 ? (8 - j) * s1 : (j - 8) * s1; break;
            default: want = n < 8 ? (7 - j - j) * s1 : (7 - j - 8) * s1; break;
            }
            if (w[n] != want) {
                bad++;
                fprintf(stderr, "row %d col %d: %g, want %g\n", k, n, w[n], want);
            }
        }
    }
    CHECK_EQ(bad, 0);
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/awq-test-model-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_load_ok();
    test_load_bad_files();
    test_load_bad_tensors();
    test_config();
    test_dequant();
#ifndef _WIN32 /* no rm there; the build tree's leftovers are harmless */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
#endif
    return h_finish();
}
