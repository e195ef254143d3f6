// pmf/train_config.c: the training configuration. YAML files use the official configs' sections
// and key names (model.P_mean, training.batch_size, sampling.omega, dataset.image_size, ...; spec
// 8); every key can also be given on the command line as section.key=value. One key table drives
// parsing, type checks, the unknown-key error and the YAML dump stored with checkpoints.
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "pmf/pmf.h"

typedef enum { K_FLOAT, K_INT, K_INT64, K_U64, K_BOOL, K_STR, K_FLOATLIST, K_IGNORED } KeyType;

typedef struct {
    const char *key;
    KeyType type;
    size_t offset, size;        // into PmfTrainConfig; size: string capacity or list capacity
    const char *choices;        // for strings: "|"-separated allowed values, or NULL
} KeySpec;

#define F(k, field) {k, K_FLOAT, offsetof(PmfTrainConfig, field), 0, NULL}
#define I(k, field) {k, K_INT, offsetof(PmfTrainConfig, field), 0, NULL}
#define B(k, field) {k, K_BOOL, offsetof(PmfTrainConfig, field), 0, NULL}
#define S(k, field, ch) {k, K_STR, offsetof(PmfTrainConfig, field), sizeof(((PmfTrainConfig *)0)->field), ch}

static const KeySpec keys[] = {
    S("model.model_str", model_str, NULL),
    I("model.patch", model.patch),
    I("model.dim", model.dim),
    I("model.heads", model.heads),
    I("model.depth_shared", model.depth_shared),
    I("model.depth_head", model.depth_head),
    I("model.bottleneck", model.bottleneck),
    I("model.mlp_hidden", model.mlp_hidden),
    I("model.num_classes", model.num_classes),   // label table rows - 1 (shards' classes)
    I("model.channels", model.channels),
    {"model.pred", K_STR, 0, 0, "x|u"},
    {"model.precond", K_STR, 0, 0, "none|linear|edm|scm"},
    {"model.tr_sampler", K_STR, 0, 0, "triangle|fm|r0|lines"},
    F("model.P_mean", objective.p_mean),
    F("model.P_std", objective.p_std),
    F("model.noise_scale", model.noise_scale),   // 0: the preset's (B/32 2, L/32 4, ...)
    B("model.tr_uniform", objective.tr_uniform),
    F("model.data_proportion", objective.data_proportion),
    B("model.cfg", objective.cfg),
    F("model.cfg_beta", objective.cfg_beta),
    F("model.cfg_max", objective.cfg_max),
    F("model.class_dropout_prob", objective.class_dropout),
    F("model.norm_eps", objective.norm_eps),
    F("model.norm_p", objective.norm_p),
    S("model.perceptual", perceptual, "none|featnet|featnet+features|lpips|lpips+convnext|convnext"),
    S("model.perceptual_weights", perceptual_weights, NULL),
    S("model.convnext_weights", convnext_weights, NULL),
    {"model.lpips", K_BOOL, SIZE_MAX - 1, 0, NULL},
    {"model.convnext", K_BOOL, SIZE_MAX - 2, 0, NULL},
    F("model.lpips_lambda", lpips_lambda),
    F("model.convnext_lambda", convnext_lambda),
    F("model.perceptual_max_t", perceptual_max_t),
    F("model.convnext_max_t", perceptual_max_t),   // the H configs' spelling (spec 14.7)
    S("training.optimizer", optimizer, "muon|adamw"),
    S("training.lr_schedule", lr_schedule, "const|warmup_const|warmup_cosine"),
    F("training.learning_rate", learning_rate),
    F("training.warmup_epochs", warmup_epochs),
    F("training.adam_b1", adam_b1),
    F("training.adam_b2", adam_b2),
    F("training.weight_decay", weight_decay),
    I("training.num_epochs", num_epochs),
    {"training.steps", K_INT64, offsetof(PmfTrainConfig, steps), 0, NULL},
    I("training.batch_size", batch_size),
    I("training.micro_batch", micro_batch),
    {"training.ema_val", K_FLOATLIST, offsetof(PmfTrainConfig, ema_val), 4, NULL},
    {"training.ema_type", K_STR, SIZE_MAX - 3, 0, "edm"},
    I("training.log_per_step", log_per_step),
    I("training.checkpoint_per_step", checkpoint_per_step),
    I("training.sample_per_step", sample_per_step),
    {"training.seed", K_U64, offsetof(PmfTrainConfig, seed), 0, NULL},
    I("training.threads", threads),
    F("training.mpi_timeout", mpi_timeout),
    I("sampling.num_steps", num_steps),
    F("sampling.omega", omega),
    F("sampling.t_min", t_min),
    F("sampling.t_max", t_max),
    S("dataset.root", data, NULL),
    I("dataset.image_size", image_size),
    S("out", out, NULL),
    S("load_from", load_from, NULL),
    // Keys of the official configs that this CPU build accepts and does not use.
    {"training.checkpoint_per_epoch", K_IGNORED, 0, 0, NULL},
    {"training.sample_per_epoch", K_IGNORED, 0, 0, NULL},
    {"training.fid_per_epoch", K_IGNORED, 0, 0, NULL},
    {"fid.*", K_IGNORED, 0, 0, NULL},
    {"logging.*", K_IGNORED, 0, 0, NULL},
};
#define N_KEYS (sizeof keys / sizeof keys[0])

void pmf_train_config_default(PmfTrainConfig *c) {
    memset(c, 0, sizeof *c);
    pmf_objective_default(&c->objective);
    c->model.pred = PMF_PRED_X;
    c->model.precond = PMF_PRECOND_NONE;
    snprintf(c->perceptual, sizeof c->perceptual, "none");
    c->lpips_lambda = 0.4f, c->convnext_lambda = 0.1f, c->perceptual_max_t = 0.8f;
    c->mpi_timeout = 600.0f;
    snprintf(c->optimizer, sizeof c->optimizer, "muon");
    snprintf(c->lr_schedule, sizeof c->lr_schedule, "const");
    c->learning_rate = 1e-3f, c->adam_b1 = 0.9f, c->adam_b2 = 0.95f;
    c->num_epochs = 320, c->batch_size = 1024;
    c->ema_val[0] = 500, c->ema_val[1] = 1000, c->ema_val[2] = 2000, c->n_ema = 3;
    c->log_per_step = 50;
    c->seed = 42;
    c->num_steps = 1, c->omega = 1.0f, c->t_min = 0.0f, c->t_max = 1.0f;
    snprintf(c->data, sizeof c->data, "fashion-mnist");
    snprintf(c->out, sizeof c->out, "runs/pmf");
}

static const KeySpec *find_key(const char *key) {
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *k = keys[i].key;
        size_t n = strlen(k);
        if (!strcmp(k, key)) return &keys[i];
        if (n > 2 && !strcmp(k + n - 2, ".*") && !strncmp(k, key, n - 1)) return &keys[i];
    }
    return NULL;
}

static int parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (*end && isspace((unsigned char)*end)) end++;
    if (end == s || *end || errno || !isfinite((float)v)) return -1;   // finite as a float, not only as a double
    *out = (float)v;
    return 0;
}

static int parse_int64(const char *s, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno) {
        // Accept integral floats such as 1e5 (YAML writers produce them).
        float f;
        if (parse_float(s, &f) == 0 && f == floorf(f) && fabsf(f) < 9e15f) {
            *out = (long long)f;
            return 0;
        }
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    const char *t[] = {"true", "True", "TRUE", "yes", "on", "1"}, *f[] = {"false", "False", "FALSE", "no", "off", "0"};
    for (int i = 0; i < 6; i++) {
        if (!strcmp(s, t[i])) return *out = 1, 0;
        if (!strcmp(s, f[i])) return *out = 0, 0;
    }
    return -1;
}

static int in_choices(const char *v, const char *choices) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

// `where` names the source ("file.yml" or "command line") in messages.
static int set_value(PmfTrainConfig *c, const char *key, const char *value, const char *where) {
    const KeySpec *k = find_key(key);
    if (!k) {
        core_set_error("%s: unknown key '%s' (see configs/ for the keys pmf_train reads)", where, key);
        return -1;
    }
    char *base = (char *)c;
    float f;
    long long i;
    int b;
    switch (k->type) {
    case K_IGNORED: return 0;
    case K_FLOAT:
        if (parse_float(value, &f)) goto type_error;
        *(float *)(base + k->offset) = f;
        return 0;
    case K_INT:
        if (parse_int64(value, &i) || i < -2147483647LL || i > 2147483647LL) goto type_error;
        *(int *)(base + k->offset) = (int)i;
        return 0;
    case K_INT64:
    case K_U64:
        if (parse_int64(value, &i) || (k->type == K_U64 && i < 0)) goto type_error;
        *(int64_t *)(base + k->offset) = i;
        return 0;
    case K_BOOL:
        if (parse_bool(value, &b)) goto type_error;
        if (k->offset == SIZE_MAX - 1 || k->offset == SIZE_MAX - 2) {   // model.lpips / model.convnext
            int lp = strstr(c->perceptual, "lpips") != NULL, cn = strstr(c->perceptual, "convnext") != NULL;
            if (k->offset == SIZE_MAX - 1) lp = b;
            else cn = b;
            snprintf(c->perceptual, sizeof c->perceptual, "%s", lp && cn ? "lpips+convnext" : lp ? "lpips" : cn ? "convnext" : "none");
            return 0;
        }
        *(int *)(base + k->offset) = b;
        return 0;
    case K_STR:
        if (k->choices && !in_choices(value, k->choices)) {
            core_set_error("%s: key '%s' = '%s': expected one of %s", where, key, value, k->choices);
            return -1;
        }
        if (!strcmp(key, "model.pred")) c->model.pred = value[0] == 'u' ? PMF_PRED_U : PMF_PRED_X;
        else if (!strcmp(key, "model.precond"))
            c->model.precond = !strcmp(value, "linear") ? PMF_PRECOND_LINEAR : !strcmp(value, "edm") ? PMF_PRECOND_EDM
                             : !strcmp(value, "scm")    ? PMF_PRECOND_SCM    : PMF_PRECOND_NONE;
        else if (!strcmp(key, "model.tr_sampler"))
            c->objective.sampler = !strcmp(value, "fm") ? PMF_TR_FM_ONLY : !strcmp(value, "r0") ? PMF_TR_R0_ONLY
                                 : !strcmp(value, "lines") ? PMF_TR_BOTH_LINES : PMF_TR_TRIANGLE;
        else if (k->offset < SIZE_MAX - 8) {
            if (strlen(value) >= k->size) {
                core_set_error("%s: key '%s': value longer than %zu characters", where, key, k->size - 1);
                return -1;
            }
            snprintf(base + k->offset, k->size, "%s", value);
        }
        return 0;
    case K_FLOATLIST: {
        // "500, 1000, 2000" or "[500, 1000, 2000]"
        float *dst = (float *)(base + k->offset);
        int n = 0;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", value);
        for (char *tok = strtok(buf, "[], "); tok; tok = strtok(NULL, "[], ")) {
            if ((size_t)n == k->size || parse_float(tok, &f) || !(f > 0)) {
                core_set_error("%s: key '%s' = '%s': expected 1 to %zu positive numbers", where, key, value, k->size);
                return -1;
            }
            dst[n++] = f;
        }
        if (n == 0) {
            core_set_error("%s: key '%s' is empty", where, key);
            return -1;
        }
        c->n_ema = n;
        return 0;
    }
    }
type_error:
    core_set_error("%s: key '%s' = '%s': expected %s", where, key, value,
                   k->type == K_FLOAT ? "a number" : k->type == K_BOOL ? "true or false" : "an integer");
    return -1;
}

int pmf_train_config_set(PmfTrainConfig *c, const char *key, const char *value) {
    return set_value(c, key, value, "command line");
}

int pmf_train_config_load(PmfTrainConfig *c, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        core_set_error("%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    // Paths are at most two mappings deep (section.key); a sequence value becomes a list.
    char section[128] = "", key[128] = "", list[256] = "";
    int depth = 0, expect_key = 1, in_seq = 0, rc = 0, done = 0;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            core_set_error("%s:%zu: YAML error: %s", path, p.problem_mark.line + 1, p.problem ? p.problem : "?");
            rc = -1;
            break;
        }
        char full[200];
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = 1; break;
        case YAML_MAPPING_START_EVENT:
            if (depth >= 2 || in_seq) {
                core_set_error("%s:%zu: nesting deeper than section.key is not a pmf config", path, ev.start_mark.line + 1);
                rc = -1, done = 1;
                break;
            }
            if (depth == 1) snprintf(section, sizeof section, "%s", key);
            depth++;
            expect_key = 1;
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            if (depth == 1) section[0] = 0;
            expect_key = 1;
            break;
        case YAML_SEQUENCE_START_EVENT:
            in_seq = 1;
            list[0] = 0;
            break;
        case YAML_SEQUENCE_END_EVENT:
            in_seq = 0;
            snprintf(full, sizeof full, "%s%s%s", section, section[0] ? "." : "", key);
            // A list of only empty or null items for a string leaves the default, as an empty value does
            // (else "out: [~]" set "" and the written 'out: ""' read back as the default; fuzz_config).
            const KeySpec *ks = find_key(full);
            int empty_str = !list[0] && ks && ks->type == K_STR;
            if (!empty_str && set_value(c, full, list, path)) rc = -1, done = 1;
            expect_key = 1;
            break;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;
            if (in_seq) {
                size_t n = strlen(list);
                snprintf(list + n, sizeof list - n, "%s%s", n ? "," : "", v);
            } else if (expect_key) {
                snprintf(key, sizeof key, "%s", v);
                expect_key = 0;
            } else {
                snprintf(full, sizeof full, "%s%s%s", section, section[0] ? "." : "", key);
                // An empty or null value (e.g. "load_from: ''") leaves the default.
                if (v[0] && strcmp(v, "~") && strcmp(v, "null") && set_value(c, full, v, path)) rc = -1, done = 1;
                expect_key = 1;
            }
            break;
        }
        default: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

// "pMF_B_16", "MiT_B_16" and "B_16" name the paper's presets too.
static void normalise_model_name(char *s) {
    const char *prefixes[] = {"pMF_", "MiT_"};
    for (int i = 0; i < 2; i++)
        if (!strncmp(s, prefixes[i], 4)) memmove(s, s + 4, strlen(s + 4) + 1);
    if (strlen(s) >= 3 && s[1] == '_') s[1] = '/';
}

int pmf_train_config_finish(PmfTrainConfig *c) {
    PmfConfig over = c->model;   // structural overrides given as model.* keys (0 = preset's)
    int builtin = !strcmp(c->data, "fashion-mnist");
    if (!c->model_str[0]) {
        // --res/--patch alone pick the paper's B model of that geometry; the built-in data, S/4.
        if (over.patch && c->image_size) snprintf(c->model_str, sizeof c->model_str, "B/%d", over.patch);
        else snprintf(c->model_str, sizeof c->model_str, "%s", builtin ? "S/4" : "B/16");
    }
    normalise_model_name(c->model_str);
    PmfConfig m;
    if (pmf_preset(c->model_str, &m)) {
        char msg[512];
        snprintf(msg, sizeof msg, "key 'model.model_str': %s", core_last_error());
        core_set_error("%s", msg);
        return -1;
    }
    if (over.patch) m.patch = over.patch;
    if (over.dim) m.dim = over.dim;
    if (over.heads) m.heads = over.heads;
    if (over.depth_shared) m.depth_shared = over.depth_shared;
    if (over.depth_head) m.depth_head = over.depth_head;
    if (over.bottleneck) m.bottleneck = over.bottleneck;
    if (over.num_classes) m.num_classes = over.num_classes;
    if (over.channels) m.channels = over.channels;
    if (over.mlp_hidden) m.mlp_hidden = over.mlp_hidden;
    else if (over.dim) m.mlp_hidden = over.dim * 8 / 3;
    m.pred = over.pred;
    m.precond = over.precond;
    if (c->image_size) m.img_size = c->image_size;
    else c->image_size = m.img_size;
    if (builtin) m.channels = 1, m.num_classes = 10;
    if (over.noise_scale > 0) m.noise_scale = over.noise_scale;
    m.with_v_head = 1;
    if (m.img_size % m.patch) {
        core_set_error("key 'dataset.image_size' = %d is not divisible by 'model.patch' = %d", m.img_size, m.patch);
        return -1;
    }
    if (pmf_config_check(&m)) return -1;
    if (m.pred == PMF_PRED_U && m.precond != PMF_PRECOND_NONE) {
        core_set_error("key 'model.precond' = a preconditioner needs model.pred = x");
        return -1;
    }
    c->model = m;
    const PmfObjective *o = &c->objective;
    struct { const char *key; int ok; } checks[] = {
        {"model.P_std", o->p_std > 0},
        {"model.data_proportion", o->data_proportion >= 0 && o->data_proportion <= 1},
        {"model.cfg_max", o->cfg_max >= 0},
        {"model.class_dropout_prob", o->class_dropout >= 0 && o->class_dropout < 1},
        {"model.norm_eps", o->norm_eps > 0},
        {"model.norm_p", o->norm_p > 0},
        {"model.perceptual_max_t", c->perceptual_max_t > 0 && c->perceptual_max_t <= 1},
        {"training.learning_rate", c->learning_rate > 0},
        {"training.adam_b1", c->adam_b1 >= 0 && c->adam_b1 < 1},
        {"training.adam_b2", c->adam_b2 >= 0 && c->adam_b2 < 1},
        {"training.batch_size", c->batch_size >= 1},
        {"training.micro_batch", c->micro_batch >= 0 && c->micro_batch <= c->batch_size},
        {"training.num_epochs", c->num_epochs >= 1 || c->steps > 0},
        {"training.log_per_step", c->log_per_step >= 1},
        {"training.mpi_timeout", c->mpi_timeout > 0},
        {"sampling.num_steps", c->num_steps >= 1},
        {"sampling.omega", c->omega >= 1},
        {"sampling.t_min", c->t_min >= 0 && c->t_min <= c->t_max && c->t_max <= 1},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (!checks[i].ok) {
            core_set_error("key '%s' has an impossible value", checks[i].key);
            return -1;
        }
    if (c->micro_batch && c->batch_size % c->micro_batch) {
        core_set_error("key 'training.batch_size' = %d is not a multiple of 'training.micro_batch' = %d", c->batch_size, c->micro_batch);
        return -1;
    }
    return 0;
}

// A string as a YAML double-quoted scalar that reads back to the same bytes: '"' and '\\' are
// escaped, and so is every character a YAML reader would refuse raw or fold as a line break
// (controls, DEL, U+0080..U+009F, U+2028, U+2029, U+FEFF, U+FFFE, U+FFFF). Bytes that are not UTF-8 are
// written as they are; the reader then refuses the file with a message naming it.
static void put_quoted(char **s, size_t *n, size_t *cap, const char *v) {
    size_t need = *n + 4 * strlen(v) + 4;   // at most 4 bytes out per byte in (\xHH)
    if (need > *cap) {
        *cap = need * 2;
        char *t = realloc(*s, *cap);
        if (!t) core_fatal("out of memory");
        *s = t;
    }
    char *o = *s + *n;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)v; *p;) {
        unsigned cp = *p;
        int len = 1;
        if (cp >= 0xC2 && cp <= 0xDF && (p[1] & 0xC0) == 0x80) cp = (cp & 0x1F) << 6 | (p[1] & 0x3F), len = 2;
        else if (cp >= 0xE0 && cp <= 0xEF && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80)
            cp = (cp & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F), len = 3;
        else if (cp >= 0xF0 && cp <= 0xF4 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80)
            len = 4;   // above U+FFFF: printable for YAML, copied whole
        else if (cp >= 0x80)
            len = 1, cp = 0x20;   // not UTF-8: copied as is (the reader refuses it, naming the file)
        if (cp == '"' || cp == '\\') *o++ = '\\', *o++ = (char)cp;
        else if (cp < 0x20 || cp == 0x7F) o += sprintf(o, "\\x%02X", cp);
        else if ((cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF)
            o += sprintf(o, "\\u%04X", cp);
        else memcpy(o, p, (size_t)len), o += len;
        p += len;
    }
    *o++ = '"';
    *o++ = '\n';
    *o = 0;
    *n = (size_t)(o - *s);
}

char *pmf_train_config_yaml(const PmfTrainConfig *c) {
    size_t cap = 8192, n = 0;
    char *s = core_malloc(cap, "config yaml");
    const char *pred = c->model.pred == PMF_PRED_U ? "u" : "x";
    const char *pre[] = {"none", "linear", "edm", "scm"}, *tr[] = {"triangle", "fm", "r0", "lines"};
    char section[32] = "";
    for (size_t i = 0; i < N_KEYS; i++) {
        const KeySpec *k = &keys[i];
        // Aliases and accepted-but-unused keys are not written back.
        if (k->type == K_IGNORED || k->offset >= SIZE_MAX - 8 || !strcmp(k->key, "model.convnext_max_t")) continue;
        const char *dot = strchr(k->key, '.');
        char sec[32] = "";
        if (dot) snprintf(sec, sizeof sec, "%.*s", (int)(dot - k->key), k->key);
        if (strcmp(sec, section)) {
            if (sec[0]) n += (size_t)snprintf(s + n, cap - n, "%s:\n", sec);   // top-level keys have none
            snprintf(section, sizeof section, "%s", sec);
        }
        const char *name = dot ? dot + 1 : k->key;
        const char *ind = dot ? "  " : "";
        const char *base = (const char *)c;
        if (!strcmp(k->key, "model.pred")) n += (size_t)snprintf(s + n, cap - n, "%s%s: %s\n", ind, name, pred);
        else if (!strcmp(k->key, "model.precond")) n += (size_t)snprintf(s + n, cap - n, "%s%s: %s\n", ind, name, pre[c->model.precond]);
        else if (!strcmp(k->key, "model.tr_sampler")) n += (size_t)snprintf(s + n, cap - n, "%s%s: %s\n", ind, name, tr[c->objective.sampler]);
        else switch (k->type) {
            case K_FLOAT: n += (size_t)snprintf(s + n, cap - n, "%s%s: %.9g\n", ind, name, *(const float *)(base + k->offset)); break;
            case K_INT: n += (size_t)snprintf(s + n, cap - n, "%s%s: %d\n", ind, name, *(const int *)(base + k->offset)); break;
            case K_INT64:
            case K_U64: n += (size_t)snprintf(s + n, cap - n, "%s%s: %lld\n", ind, name, (long long)*(const int64_t *)(base + k->offset)); break;
            case K_BOOL: n += (size_t)snprintf(s + n, cap - n, "%s%s: %s\n", ind, name, *(const int *)(base + k->offset) ? "true" : "false"); break;
            case K_STR:
                n += (size_t)snprintf(s + n, cap - n, "%s%s: ", ind, name);
                put_quoted(&s, &n, &cap, base + k->offset);
                break;
            case K_FLOATLIST:
                n += (size_t)snprintf(s + n, cap - n, "%s%s: [", ind, name);
                for (int j = 0; j < c->n_ema; j++) n += (size_t)snprintf(s + n, cap - n, "%s%.9g", j ? ", " : "", c->ema_val[j]);
                n += (size_t)snprintf(s + n, cap - n, "]\n");
                break;
            default: break;
            }
        if (n + 1024 > cap) {
            cap *= 2;
            char *t = realloc(s, cap);
            if (!t) core_fatal("out of memory");
            s = t;
        }
    }
    return s;
}
