/* card.c — a model's card: see card.h. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "arch.h"
#include "card.h"
#include "error.h"
#include "fileio.h"
#include "genparams.h"
#include "server.h"
#include "utf8.h"

// Training curves longer than this are thinned (evenly, keeping the last row) so the
// card stays small enough to fetch and draw.
#define CURVE_MAX_POINTS 2000

void card_add_config(cJSON *o, const Model *model) {
    cJSON_AddNumberToObject(o, "vocab_size", model->vocab_size);
    ArchField f[ARCH_MAX_FIELDS];
    int n = model->arch->fields(model, f);
    for (int i = 0; i < n; i++)
        if (f[i].text)
            cJSON_AddStringToObject(o, f[i].name, f[i].text);
        else
            cJSON_AddNumberToObject(o, f[i].name, (double)f[i].number);
    cJSON_AddNumberToObject(o, "parameters", (double)model->num_params);
}

void card_add_number(cJSON *o, const char *name, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

// Rows of train_log.jsonl that carry a step; other rows (notes) and unreadable lines
// are skipped. A missing log is an empty curve.
static cJSON *load_curve(const char *dir) {
    static const char *fields[] = {"step", "train_loss",   "val_loss",
                                   "lr",   "tokens_per_s", "elapsed_s"};
    cJSON *rows = cJSON_CreateArray();
    char *path = path_join(dir, "train_log.jsonl");
    char *data = NULL;
    size_t len = 0;
    char err[ERR_LEN];
    int failed = !path || file_read_regular(path, 0, &data, &len, err);
    free(path);
    if (failed) return rows;
    for (char *line = data; line && *line;) {
        char *nl = memchr(line, '\n', len - (size_t)(line - data));
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        cJSON *in = cJSON_ParseWithLength(line, n);
        const cJSON *step = in ? cJSON_GetObjectItemCaseSensitive(in, "step") : NULL;
        if (cJSON_IsNumber(step)) {
            cJSON *row = cJSON_CreateObject();
            for (size_t i = 0; i < sizeof(fields) / sizeof(*fields); i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, fields[i]);
                if (cJSON_IsNumber(v))
                    card_add_number(row, fields[i], v->valuedouble);
                else
                    cJSON_AddNullToObject(row, fields[i]);
            }
            cJSON_AddItemToArray(rows, row);
        }
        cJSON_Delete(in);
        line = nl ? nl + 1 : NULL;
    }
    free(data);

    int total = cJSON_GetArraySize(rows);
    if (total <= CURVE_MAX_POINTS) return rows;
    cJSON *thin = cJSON_CreateArray();
    int i = 0, next = 0, kept = 0;
    for (cJSON *r = rows->child; r; r = r->next, i++) {
        if (i == next || i == total - 1) {
            cJSON_AddItemToArray(thin, cJSON_Duplicate(r, 1));
            kept++;
            next = (int)((long)kept * (total - 1) / (CURVE_MAX_POINTS - 1));
        }
    }
    cJSON_Delete(rows);
    return thin;
}

// cJSON prints 15 significant digits, which would turn 2^53 into 9.00719925474099e+15:
// whole numbers go out digit for digit.
static void add_exact(cJSON *o, const char *name, double v) {
    char buf[32];
    if (isnan(v)) {
        cJSON_AddNullToObject(o, name);
    } else if (v == floor(v) && fabs(v) <= GEN_SEED_MAX) {
        snprintf(buf, sizeof(buf), "%.0f", v);
        cJSON_AddRawToObject(o, name, buf);
    } else {
        cJSON_AddNumberToObject(o, name, v);
    }
}

// Each generation parameter's default for one endpoint: what a request that leaves the
// field out gets.
static cJSON *gen_defaults(int openai) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < genparams_count; i++)
        add_exact(o, genparams[i].name,
                  genparams_default(&genparams[i], openai, srv.cfg.max_tokens));
    cJSON_AddArrayToObject(o, "stop");
    return o;
}

static void add_limit(cJSON *o, const char *name, double min, int min_exclusive, double max) {
    cJSON *l = cJSON_AddObjectToObject(o, name);
    if (isfinite(min)) add_exact(l, "min", min);
    if (min_exclusive) cJSON_AddTrueToObject(l, "min_exclusive");
    if (isfinite(max)) add_exact(l, "max", max);
}

// What a request may ask for: the generation parameters' ranges with --max-tokens
// applied, and the server's other request limits.
static cJSON *gen_limits(void) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < genparams_count; i++) {
        const GenParam *gp = &genparams[i];
        add_limit(o, gp->name, gp->min, gp->min_open, genparams_max(gp, srv.cfg.max_tokens));
    }
    add_limit(o, "prompt_chars", NAN, 0, srv.cfg.max_prompt);
    add_limit(o, "stop", NAN, 0, GEN_MAX_STOP);
    add_limit(o, "stop_bytes", NAN, 0, GEN_MAX_STOP_BYTES);
    add_limit(o, "body_bytes", NAN, 0, (double)srv.cfg.max_body);
    add_limit(o, "n", 1, 0, API_MAX_CHOICES);
    add_limit(o, "logprobs", 0, 0, GEN_MAX_TOP);
    return o;
}

char *card_build(const char *id, const char *dir, const Model *model, const Vocab *vocab,
                 const ModelInfo *info, char *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "architecture",
                            "Embedding(V, E) -> LSTM(E -> H, L layers) -> Linear(H, V)");
    card_add_config(o, model);
    cJSON_AddNumberToObject(o, "steps", (double)info->steps);
    card_add_number(o, "best_val_loss", info->best_val_loss);
    card_add_number(o, "best_val_bpc", info->best_val_loss / log(2.0));
    cJSON_AddStringToObject(o, "vocab_sha256", info->vocab_sha256);
    cJSON_AddStringToObject(o, "corpus_sha256", info->corpus_sha256);
    cJSON *chars = cJSON_AddArrayToObject(o, "vocab");
    for (int i = 0; i < vocab->size; i++) {
        char ch[5];
        ch[utf8_encode(vocab->chars[i], ch)] = '\0';
        cJSON_AddItemToArray(chars, cJSON_CreateString(ch));
    }
    cJSON_AddItemToObject(o, "defaults", gen_defaults(0));
    cJSON_AddItemToObject(o, "openai_defaults", gen_defaults(1));
    cJSON_AddItemToObject(o, "limits", gen_limits());
    cJSON_AddItemToObject(o, "training_curve", load_curve(dir));
    char *card = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!card) err_set(err, "out of memory building the model card");
    return card;
}
