#include "genparams.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

#define FIELD(f) offsetof(GenerateParams, f)

const GenParam genparams[] = {
    {"max_tokens", GENPARAM_INT, 1, GEN_MAX_TOKENS_LIMIT, 0, 200, 16, FIELD(max_tokens),
     "characters to generate at most"},
    {"temperature", GENPARAM_FLOAT, 0, INFINITY, 0, 0.8, 1.0, FIELD(sampler.temperature),
     "divides the logits; 0 is greedy (always the most likely char)"},
    {"top_k", GENPARAM_INT, 0, INT32_MAX, 0, 40, 0, FIELD(sampler.top_k),
     "sample among the k most likely chars only; 0 disables"},
    {"top_p", GENPARAM_FLOAT, 0, 1, 1, 1.0, 1.0, FIELD(sampler.top_p),
     "sample among the most likely chars whose probabilities reach p; 1 disables"},
    {"repetition_penalty", GENPARAM_FLOAT, 0, INFINITY, 1, 1.0, 1.0,
     FIELD(sampler.repetition_penalty),
     "divides positive (multiplies negative) logits of chars in the window; 1 disables"},
    {"repetition_window", GENPARAM_INT, 0, INT32_MAX, 0, 64, 64, FIELD(sampler.repetition_window),
     "how many of the latest chars (prompt included) the penalty looks at"},
    {"presence_penalty", GENPARAM_FLOAT, -2, 2, 0, 0, 0, FIELD(sampler.presence_penalty),
     "subtracted from the logit of every char generated so far (not the prompt's); 0 disables"},
    {"frequency_penalty", GENPARAM_FLOAT, -2, 2, 0, 0, 0, FIELD(sampler.frequency_penalty),
     "times a char's count so far, subtracted from its logit; 0 disables"},
    {"min_p", GENPARAM_FLOAT, 0, 1, 0, 0, 0, FIELD(sampler.min_p),
     "drop chars less likely than min_p times the most likely one; 0 disables"},
    {"seed", GENPARAM_SEED, 0, GEN_SEED_MAX, 0, NAN, NAN, FIELD(seed),
     "the same seed and parameters give the same text; random when absent"},
};
const int genparams_count = (int)(sizeof(genparams) / sizeof(genparams[0]));

const GenParam *genparams_find(const char *name) {
    for (int i = 0; i < genparams_count; i++) {
        const char *a = genparams[i].name, *b = name;
        while (*a && (*a == *b || (*a == '_' && *b == '-'))) a++, b++;
        if (!*a && !*b) return &genparams[i];
    }
    return NULL;
}

static void store(GenerateParams *p, const GenParam *gp, double v) {
    char *field = (char *)p + gp->offset;
    switch (gp->type) {
    case GENPARAM_INT:
        *(int *)field = (int)v;
        break;
    case GENPARAM_FLOAT:
        // Keep inside float's range, and away from 0 where 0 would mean something else.
        if (v > FLT_MAX) v = FLT_MAX;
        if (v > 0 && v < FLT_MIN) v = FLT_MIN;
        *(float *)field = (float)v;
        break;
    case GENPARAM_SEED:
        *(uint64_t *)field = (uint64_t)v;
        break;
    }
}

double genparams_max(const GenParam *gp, int max_tokens_cap) {
    if (gp->offset == FIELD(max_tokens) && max_tokens_cap > 0 && max_tokens_cap < gp->max)
        return max_tokens_cap;
    return gp->max;
}

double genparams_default(const GenParam *gp, int openai, int max_tokens_cap) {
    double v = openai ? gp->def_openai : gp->def, hi = genparams_max(gp, max_tokens_cap);
    return v > hi ? hi : v;
}

void genparams_defaults(GenerateParams *p, int openai, int max_tokens_cap) {
    memset(p, 0, sizeof(*p));
    for (int i = 0; i < genparams_count; i++) {
        double v = genparams_default(&genparams[i], openai, max_tokens_cap);
        if (!isnan(v)) store(p, &genparams[i], v);
    }
}

static double upper(const GenParam *gp, double cap) {
    return cap > 0 && cap < gp->max ? cap : gp->max;
}

void genparams_range_text(const GenParam *gp, double cap, char *buf, size_t len) {
    double hi = upper(gp, cap);
    if (isinf(hi))
        snprintf(buf, len, "%s %g", gp->min_open ? ">" : ">=", gp->min);
    else if (gp->type == GENPARAM_FLOAT)
        snprintf(buf, len, "%c%g, %g]", gp->min_open ? '(' : '[', gp->min, hi);
    else
        snprintf(buf, len, "%.0f to %.0f", gp->min, hi);
}

// The one range check of every parameter, for genparams_set and genparams_check.
static int check(const GenParam *gp, double v, double cap, char *err) {
    double hi = upper(gp, cap);
    int whole = gp->type != GENPARAM_FLOAT;
    if (!isfinite(v)) return err_set(err, "%s must be a finite number", gp->name);
    if (whole && v != floor(v)) return err_set(err, "%s must be an integer", gp->name);
    if (v < gp->min || (gp->min_open && v == gp->min) || v > hi) {
        char range[64];
        genparams_range_text(gp, cap, range, sizeof(range));
        if (isinf(hi)) return err_set(err, "%s must be %s", gp->name, range);
        if (whole) return err_set(err, "%s must be an integer from %s", gp->name, range);
        return err_set(err, "%s must be in %s", gp->name, range);
    }
    return 0;
}

int genparams_set(GenerateParams *p, const GenParam *gp, double v, double cap, char *err) {
    if (check(gp, v, cap, err)) return -1;
    store(p, gp, v);
    return 0;
}

static double load(const GenerateParams *p, const GenParam *gp) {
    const char *field = (const char *)p + gp->offset;
    switch (gp->type) {
    case GENPARAM_INT:
        return *(const int *)field;
    case GENPARAM_FLOAT:
        return *(const float *)field;
    case GENPARAM_SEED:
        return (double)*(const uint64_t *)field;
    }
    return NAN;
}

int genparams_check(const GenerateParams *p, char *err) {
    for (int i = 0; i < genparams_count; i++) {
        const GenParam *gp = &genparams[i];
        if (gp->type == GENPARAM_SEED) continue;
        double v = load(p, gp);
        if (gp->offset == FIELD(max_tokens) && v == 0) continue;
        if (check(gp, v, 0, err)) return -1;
    }
    return 0;
}
