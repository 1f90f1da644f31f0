/* test_ipc_msg.c - ipc/ framing and messages: the incremental frame decoder and its length
 * check, the strict msgpack validation (depth, counts, UTF-8, ext, trailing bytes), field type
 * and range errors with their messages, and an encode/decode round trip of every message type. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "frame.h"
#include "harness.h"
#include "mp.h"
#include "msg.h"

/* Decode hand-written msgpack bytes. */
static int dec(const char *bytes, size_t n, ipc_msg *m, char *err) {
    err[0] = 0;
    return ipc_msg_decode(err, (const uint8_t *)bytes, n, m);
}
#define DEC(lit, m, err) dec(lit, sizeof(lit) - 1, m, err)

/* encode -> decode -> encode: the two encodings must be identical (every field survives). */
static void round_trip(const ipc_msg *m, ipc_msg *out) {
    awq_buf a = {0}, b = {0};
    char err[AWQ_ERR_LEN] = "";
    CHECK_EQ(ipc_msg_encode(err, m, &a), 0);
    int rc = ipc_msg_decode(err, (const uint8_t *)a.data, a.len, out);
    if (rc) fprintf(stderr, "  decode of %s failed: %s\n", ipc_type_name(m->type), err);
    CHECK_EQ(rc, 0);
    CHECK_EQ(out->type, m->type);
    CHECK_EQ(out->id, m->id);
    CHECK_EQ(ipc_msg_encode(err, out, &b), 0);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    awq_buf_free(&a);
    awq_buf_free(&b);
}

int main(void) {
    char err[AWQ_ERR_LEN];
    ipc_msg m;

    CASE("ipc-1.1", "frame decoder fed one byte at a time yields both frames intact");
    {
        awq_buf b = {0};
        CHECK_EQ(ipc_frame_put(&b, "hello", 5), 0);
        CHECK_EQ(ipc_frame_put(&b, "world!!", 7), 0);
        ipc_frame_dec *d = ipc_frame_dec_create(1024);
        int frames = 0;
        for (size_t i = 0; i < b.len; i++) {
            size_t used;
            int rc = ipc_frame_dec_feed(err, d, (const uint8_t *)b.data + i, 1, &used);
            CHECK_EQ(used, 1);
            if (rc == 1) {
                const uint8_t *p;
                uint32_t n;
                ipc_frame_dec_take(d, &p, &n);
                if (frames == 0) CHECK(n == 5 && memcmp(p, "hello", 5) == 0);
                else CHECK(n == 7 && memcmp(p, "world!!", 7) == 0);
                frames++;
            }
        }
        CHECK_EQ(frames, 2);
        CHECK_EQ(ipc_frame_dec_buffered(d), 0);
        /* and everything at once: the decoder stops after one frame and says how much it used */
        size_t used;
        CHECK_EQ(ipc_frame_dec_feed(err, d, (const uint8_t *)b.data, b.len, &used), 1);
        CHECK_EQ(used, 9);
        ipc_frame_dec_free(d);
        awq_buf_free(&b);
    }

    CASE("ipc-1.2", "a 4 GiB length header is refused before any allocation");
    {
        ipc_frame_dec *d = ipc_frame_dec_create(IPC_FRAME_MAX_DEFAULT);
        const uint8_t h[4] = {0xff, 0xff, 0xff, 0xff};
        size_t used;
        CHECK_EQ(ipc_frame_dec_feed(err, d, h, 4, &used), AWQ_ETOOBIG);
        CHECK_CONTAINS(err, "length 4294967295 exceeds the maximum of 4194304 bytes");
        CHECK_EQ(ipc_frame_dec_buffered(d), 4); /* nothing allocated for the payload */
        CHECK_EQ(ipc_frame_dec_feed(err, d, h, 4, &used), AWQ_ETOOBIG); /* stays failed */
        ipc_frame_dec_free(d);
        CHECK(ipc_frame_dec_create(0) == NULL);
        CHECK(ipc_frame_dec_create(IPC_FRAME_MAX + 1) == NULL);
    }

    CASE("ipc-1.3", "a zero-length frame is a protocol error");
    {
        ipc_frame_dec *d = ipc_frame_dec_create(64);
        const uint8_t h[4] = {0, 0, 0, 0};
        size_t used;
        CHECK_EQ(ipc_frame_dec_feed(err, d, h, 4, &used), AWQ_EPROTO);
        CHECK_CONTAINS(err, "zero-length frame");
        ipc_frame_dec_free(d);
    }

    CASE("ipc-2.1", "a minimal ping decodes; id and t may come in any order");
    CHECK_EQ(DEC("\x82\xa2id\x05\xa1t\xa4ping", &m, err), 0);
    CHECK_EQ(m.type, IPC_T_PING);
    CHECK_EQ(m.id, 5);
    ipc_msg_free(&m);

    CASE("ipc-2.2", "deep nesting is refused");
    {
        /* {"t":"ping","id":1,"x":[[[[[[[[[[]]]]]]]]]]} */
        char b[64] = "\x83\xa1t\xa4ping\xa2id\x01\xa1x";
        size_t n = strlen(b);
        for (int i = 0; i < 12; i++) b[n++] = (char)0x91;
        b[n++] = (char)0x90;
        CHECK_EQ(dec(b, n, &m, err), AWQ_EPROTO);
        CHECK_CONTAINS(err, "nesting deeper than 8");
        ipc_msg_free(&m);
    }

    CASE("ipc-2.3", "a huge array count with few bytes is refused before allocating");
    CHECK_EQ(DEC("\x83\xa1t\xa4ping\xa2id\x01\xa1x\xdd\xff\xff\xff\xff\x01", &m, err), AWQ_EPROTO);
    CHECK_CONTAINS(err, "claims 4294967295 elements, only 1 bytes left");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\xdf\xff\xff\xff\xff", &m, err), AWQ_EPROTO); /* the top map itself */
    CHECK_CONTAINS(err, "claims 4294967295 elements");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x81\xa1t\xdb\xff\xff\xff\xffping", &m, err), AWQ_EPROTO);
    CHECK_CONTAINS(err, "string at offset 3 claims 4294967295 bytes");
    ipc_msg_free(&m);

    CASE("ipc-2.4", "wrong field types are errors naming the field");
    CHECK_EQ(DEC("\x84\xa1t\xa8generate\xa2id\x01\xa6prompt\xa2hi\xabtemperature\xa3hot", &m, err), AWQ_EINVAL);
    CHECK_STR(err, "generate: field \"temperature\": expected float, got string");
    CHECK_EQ(m.id, 1); /* still known, so the error can be answered */
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x82\xa1t\x07\xa2id\x01", &m, err), AWQ_EINVAL);
    CHECK_STR(err, "message: field \"t\": expected string, got unsigned integer");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x83\xa1t\xa8generate\xa2id\x02\xa6prompt\x92\x01\x02", &m, err), AWQ_EINVAL);
    CHECK_STR(err, "generate: field \"prompt\": expected string, got array");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x82\x01\x02\xa1t\xa4ping", &m, err), AWQ_EPROTO);
    CHECK_CONTAINS(err, "map key at offset 1 is a unsigned integer, not a string");
    ipc_msg_free(&m);

    CASE("ipc-2.5", "trailing bytes after the map are an error");
    CHECK_EQ(DEC("\x82\xa1t\xa4ping\xa2id\x01\xc0", &m, err), AWQ_EPROTO);
    CHECK_CONTAINS(err, "1 trailing bytes after the map at offset 12");
    ipc_msg_free(&m);

    CASE("ipc-2.6", "invalid UTF-8 in any string (keys too) is refused");
    CHECK_EQ(DEC("\x83\xa1t\xa8generate\xa2id\x01\xa6prompt\xa2\xc0\xaf", &m, err), AWQ_EUTF8);
    CHECK_CONTAINS(err, "is not valid UTF-8");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x83\xa1t\xa4ping\xa2id\x01\xa2\xed\xa0\x01", &m, err), AWQ_EUTF8);
    ipc_msg_free(&m);

    CASE("ipc-2.7", "unknown message type: AWQ_EUNSUPPORTED with the id kept");
    CHECK_EQ(DEC("\x82\xa1t\xa5" "dance\xa2id\x09", &m, err), AWQ_EUNSUPPORTED);
    CHECK_STR(err, "unknown message type \"dance\"");
    CHECK_EQ(m.id, 9);
    ipc_msg_free(&m);

    CASE("ipc-2.8", "unknown fields are ignored, even nested ones");
    CHECK_EQ(DEC("\x84\xa1t\xa4ping\xa5" "extra\x82\xa1x\x91\x01\xa1y\xc3\xa2id\x03\xa3" "bin\xc4\x02zz", &m, err), 0);
    CHECK_EQ(m.type, IPC_T_PING);
    CHECK_EQ(m.id, 3);
    ipc_msg_free(&m);

    CASE("ipc-2.9", "ranges, required fields, ids, ext and bad bytes");
    CHECK_EQ(DEC("\x84\xa1t\xa8generate\xa2id\x01\xa6prompt\xa2hi\xabtemperature\xcb\x40\x69\0\0\0\0\0\0", &m, err),
             AWQ_ERANGE); /* 200.0 */
    CHECK_STR(err, "generate: field \"temperature\" = 200 is out of range [0, 100]");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x84\xa1t\xa8generate\xa2id\x01\xa6prompt\xa2hi\xaamax_tokens\xff", &m, err), AWQ_ERANGE);
    CHECK_STR(err, "generate: field \"max_tokens\" must not be negative");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x82\xa1t\xa8generate\xa2id\x01", &m, err), AWQ_EINVAL);
    CHECK_STR(err, "generate: needs exactly one of \"messages\" or \"prompt\"");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x81\xa1t\xa4ping", &m, err), AWQ_EPROTO);
    CHECK_CONTAINS(err, "ping: missing field \"id\"");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x82\xa1t\xa6" "cancel\xa2id\x02", &m, err), AWQ_EINVAL);
    CHECK_STR(err, "cancel: missing field \"target\"");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x82\xa2id\x01\xa1x\x01", &m, err), AWQ_EPROTO);
    CHECK_CONTAINS(err, "missing field \"t\"");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x83\xa1t\xa4ping\xa2id\x01\xa1x\xd4\x01\x02", &m, err), AWQ_EPROTO);
    CHECK_CONTAINS(err, "ext type at offset 14");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x83\xa1t\xa4ping\xa2id\x01\xa1x\xc1", &m, err), AWQ_EPROTO);
    CHECK_CONTAINS(err, "invalid type byte 0xc1");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x91\x01", &m, err), AWQ_EPROTO);
    CHECK_CONTAINS(err, "payload is not a map");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x83\xa1t\xa4" "done\xa2id\x01\xad" "finish_reason\xa5" "bored", &m, err), AWQ_EINVAL);
    CHECK_STR(err, "done: field \"finish_reason\" has unknown value \"bored\"");
    ipc_msg_free(&m);
    CHECK_EQ(DEC("\x82\xa1t\xa4ping\xa2id\xcf\x00\x00\x00\x01\x00\x00\x00\x00", &m, err), AWQ_ERANGE);
    CHECK_CONTAINS(err, "field \"id\" = 4294967296 is out of range");
    ipc_msg_free(&m);

    CASE("ipc-3.1", "round trip of every message type");
    {
        ipc_chat chats[2] = {{ipc_cstr("system"), ipc_cstr("be brief")}, {ipc_cstr("user"), ipc_cstr("h\xc3\xa9llo")}};
        ipc_str feats[2] = {ipc_cstr("cancel"), ipc_cstr("stream")};
        ipc_kv lim[4] = {{.key = ipc_cstr("max_frame_bytes"), .kind = IPC_KV_INT, .i = 4194304},
                         {.key = ipc_cstr("neg"), .kind = IPC_KV_INT, .i = -5},
                         {.key = ipc_cstr("ratio"), .kind = IPC_KV_FLOAT, .f = 0.25},
                         {.key = ipc_cstr("on"), .kind = IPC_KV_BOOL, .b = true}};
        ipc_kv sets[1] = {{.key = ipc_cstr("temperature"), .kind = IPC_KV_STR, .s = ipc_cstr("0.7")}};
        ipc_str stops[2] = {ipc_cstr("</s>"), ipc_cstr("\n\n")};
        uint32_t ids[3] = {1, 32000, 7};
        ipc_bias bias[2] = {{13, -100.0f}, {42, 2.5f}};
        ipc_top top[2] = {{5, -0.5f}, {6, -1.25f}};
        ipc_lp lps[1] = {{7, -0.25f, top, 2}};
        ipc_model_info models[1] = {{ipc_cstr("shisa"), ipc_cstr("/m/shisa"), 5590000000ull, true}};
        ipc_str nul_text = {"a\0b", 3};
        for (int t = 1; t < IPC_T_COUNT; t++) {
            ipc_msg_init(&m, (ipc_type)t, (uint32_t)(1000 + t));
            switch (t) {
            case IPC_T_HELLO:
                m.u.hello.client = ipc_cstr("test");
                m.u.hello.server = ipc_cstr("awqd 0.1");
                m.u.hello.model = ipc_cstr("shisa");
                m.u.hello.features = feats;
                m.u.hello.n_features = 2;
                m.u.hello.limits = lim;
                m.u.hello.n_limits = 4;
                break;
            case IPC_T_GENERATE: {
                ipc_gen *g = &m.u.gen;
                g->messages = chats;
                g->n_messages = 2;
                g->add_bos = 0;
                g->max_tokens = 100;
                g->temperature = 0.5f;
                g->top_k = 40;
                g->top_p = 0.9f;
                g->min_p = 0.05f;
                g->typical_p = 0.95f;
                g->repetition_penalty = 1.1f;
                g->presence_penalty = 0.5f;
                g->frequency_penalty = -0.5f;
                g->penalty_window = 128;
                g->has_seed = true;
                g->seed = 0xfedcba9876543210ull;
                g->stop = stops;
                g->n_stop = 2;
                g->stop_ids = ids;
                g->n_stop_ids = 3;
                g->logit_bias = bias;
                g->n_logit_bias = 2;
                g->ignore_eos = true;
                g->logprobs = 2;
                g->stream = false;
                break;
            }
            case IPC_T_TOKEN:
                m.u.token.text = nul_text;
                m.u.token.ids = ids;
                m.u.token.n_ids = 1;
                m.u.token.lps = lps;
                m.u.token.n_lps = 1;
                break;
            case IPC_T_DONE:
                m.u.done.finish = IPC_FINISH_CONTEXT;
                m.u.done.stats = (ipc_stats){12, 34, 5.5f, 1000.0f, 80.0f, 430.25f};
                break;
            case IPC_T_ERROR:
                m.u.error.code = AWQ_ECONTEXT;
                m.u.error.message = ipc_cstr("too long");
                break;
            case IPC_T_CANCEL: m.u.target = 77; break;
            case IPC_T_TOKENIZE:
                m.u.tokenize.text = ipc_cstr("hi there");
                m.u.tokenize.add_bos = false;
                m.u.tokenize.special = true;
                break;
            case IPC_T_TOKENIZE_R:
            case IPC_T_DETOKENIZE:
                m.u.ids.ids = ids;
                m.u.ids.n_ids = 3;
                m.u.ids.skip_special = t == IPC_T_DETOKENIZE;
                break;
            case IPC_T_DETOKENIZE_R:
            case IPC_T_TEMPLATE_R:
            case IPC_T_METRICS_R:
            case IPC_T_LOAD: m.u.text = ipc_cstr("/models/x"); break;
            case IPC_T_TEMPLATE:
                m.u.tmpl.messages = chats;
                m.u.tmpl.n_messages = 2;
                m.u.tmpl.add_generation_prompt = false;
                break;
            case IPC_T_PROGRESS:
                m.u.progress.stage = IPC_STAGE_UPLOADED;
                m.u.progress.pct = 75.0f;
                break;
            case IPC_T_LIST_R:
                m.u.models.models = models;
                m.u.models.n_models = 1;
                break;
            case IPC_T_STATUS_R:
                m.u.kvs.kv = lim;
                m.u.kvs.n_kv = 4;
                break;
            case IPC_T_SETTINGS_R:
                m.u.kvs.kv = sets;
                m.u.kvs.n_kv = 1;
                break;
            case IPC_T_SETTINGS_GET: m.u.setting.key = ipc_cstr("temperature"); break;
            case IPC_T_SETTINGS_SET:
                m.u.setting.key = ipc_cstr("temperature");
                m.u.setting.value = ipc_cstr("0.2");
                break;
            default: break;
            }
            ipc_msg out;
            round_trip(&m, &out);
            /* spot checks of values, beyond byte equality */
            if (t == IPC_T_GENERATE) {
                const ipc_gen *g = &out.u.gen;
                CHECK_EQ(g->n_messages, 2);
                CHECK_STR(g->messages[1].content.s, "h\xc3\xa9llo");
                CHECK_EQ(g->add_bos, 0);
                CHECK_NEAR(g->temperature, 0.5, 1e-6);
                CHECK_EQ(g->seed, 0xfedcba9876543210ull);
                CHECK_STR(g->stop[1].s, "\n\n");
                CHECK_EQ(g->logit_bias[1].id, 42);
                CHECK_NEAR(g->logit_bias[0].bias, -100, 1e-6);
                CHECK(!g->stream && g->ignore_eos);
            } else if (t == IPC_T_TOKEN) {
                CHECK_EQ(out.u.token.text.len, 3);
                CHECK(memcmp(out.u.token.text.s, "a\0b", 3) == 0);
                CHECK_EQ(out.u.token.lps[0].top[1].id, 6);
                CHECK_NEAR(out.u.token.lps[0].top[1].lp, -1.25, 1e-6);
            } else if (t == IPC_T_ERROR) {
                CHECK_STR(out.u.error.name.s, "context_exceeded");
            } else if (t == IPC_T_LIST_R) {
                CHECK_EQ(out.u.models.models[0].size, 5590000000ull);
            } else if (t == IPC_T_HELLO) {
                CHECK_EQ(out.u.hello.limits[1].i, -5);
                CHECK_EQ(out.u.hello.proto_major, IPC_PROTO_MAJOR);
            }
            ipc_msg_free(&out);
        }
    }

    CASE("ipc-3.2", "defaults apply to omitted fields; logit_bias accepts decimal string keys");
    CHECK_EQ(DEC("\x84\xa1t\xa8generate\xa2id\x01\xa6prompt\xa1x\xaalogit_bias\x81\xa3" "123\xff", &m, err), 0);
    CHECK_NEAR(m.u.gen.temperature, 1.0, 0);
    CHECK_EQ(m.u.gen.add_bos, -1);
    CHECK(m.u.gen.stream);
    CHECK_EQ(m.u.gen.penalty_window, 64);
    CHECK_EQ(m.u.gen.n_logit_bias, 1);
    CHECK_EQ(m.u.gen.logit_bias[0].id, 123);
    CHECK_NEAR(m.u.gen.logit_bias[0].bias, -1, 0);
    ipc_msg_free(&m);

    CASE("ipc-3.3", "encoder refuses unknown types");
    {
        awq_buf b = {0};
        ipc_msg_init(&m, IPC_T_COUNT, 1);
        CHECK_EQ(ipc_msg_encode(err, &m, &b), AWQ_EINVAL);
        CHECK_CONTAINS(err, "unknown message type");
        CHECK_EQ(b.len, 0);
        awq_buf_free(&b);
    }
    return h_finish();
}
