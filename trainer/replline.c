/* replline.c — the REPL's entries and parameters: see replline.h. */
#include "replline.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "generate.h"

int replline_feed(ReplInput *in, const char *line) {
    size_t len = strlen(line);
    int fence = strcmp(line, "\"\"\"") == 0;
    if (in->in_block) {
        if (fence) {
            in->in_block = 0;
            if (in->text.len && in->text.s[in->text.len - 1] == '\n')
                in->text.s[--in->text.len] = 0;
            buf_add(&in->text, "", 0); // an empty block is an empty prompt
            return 1;
        }
        buf_add(&in->text, line, len);
        buf_add(&in->text, "\n", 1);
        return 0;
    }
    if (fence && !in->going_on) {
        in->in_block = 1;
        return 0;
    }
    in->going_on = len > 0 && line[len - 1] == '\\';
    buf_add(&in->text, line, len - (size_t)in->going_on); // even 0 bytes: text.s is a string
    if (in->going_on) buf_add(&in->text, "\n", 1);
    return !in->going_on;
}

void replline_clear(ReplInput *in) {
    buf_drop(&in->text, in->text.len);
    in->in_block = in->going_on = 0;
}

void replline_free(ReplInput *in) {
    buf_free(&in->text);
}

static const struct {
    const char *name;
    ReplKind kind;
} commands[] = {{"set", REPL_SET},   {"show", REPL_SHOW}, {"reset", REPL_RESET},
                {"help", REPL_HELP}, {"quit", REPL_QUIT}, {"exit", REPL_QUIT}};

int replline_parse(char *entry, ReplCommand *out, char *err) {
    memset(out, 0, sizeof(*out));
    if (entry[0] != '/' || entry[1] == '/') {
        out->kind = REPL_PROMPT;
        out->text = entry + (entry[0] == '/');
        return 0;
    }
    char *word = entry + 1, *rest = word + strcspn(word, " \t");
    if (*rest) *rest++ = '\0';
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(word, commands[i].name) != 0) continue;
        out->kind = commands[i].kind;
        if (out->kind != REPL_SET) {
            if (rest[strspn(rest, " \t")]) return err_set(err, "/%s takes nothing after it", word);
            return 0;
        }
        rest += strspn(rest, " \t");
        if (!*rest) return err_set(err, "usage: /set NAME VALUE (see /show for the names)");
        out->name = rest;
        rest += strcspn(rest, " \t");
        if (*rest) *rest++ = '\0';
        out->value = rest;
        return 0;
    }
    return err_set(err, "unknown command /%.40s (see /help)", word);
}

void replline_defaults(ReplParams *rp) {
    memset(rp, 0, sizeof(*rp));
    genparams_defaults(&rp->p, 0, 0);
}

// "\n", "\t" and "\\" as the chars they name; any other '\' stays.
static int unescape(const char *s, char *out, size_t cap, char *err) {
    size_t n = 0;
    for (; *s; s++) {
        char c = *s;
        if (c == '\\' && (s[1] == 'n' || s[1] == 't' || s[1] == '\\'))
            c = *++s == 'n' ? '\n' : *s == 't' ? '\t' : '\\';
        if (n + 1 >= cap)
            return err_set(err, "stop sequences must be at most %d bytes", GEN_MAX_STOP_BYTES);
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

int replline_set(ReplParams *rp, const char *name, const char *value, char *err) {
    ReplParams next = *rp;
    if (strcmp(name, "stop") == 0) {
        if (unescape(value, next.stop, sizeof(next.stop), err)) return -1;
        *rp = next;
        return 0;
    }
    const GenParam *gp = genparams_find(name);
    if (!gp || strcmp(gp->name, name) != 0)
        return err_set(err, "unknown parameter \"%.40s\" (see /show)", name);
    if (gp->type == GENPARAM_SEED && strcmp(value, "random") == 0) {
        rp->seed_fixed = 0;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (!*value || *end || errno == ERANGE)
        return err_set(err, "%s takes a number, got \"%.40s\"", gp->name, value);
    if (genparams_set(&next.p, gp, v, 0, err)) return -1;
    if (gp->type == GENPARAM_SEED) next.seed_fixed = 1;
    *rp = next;
    return 0;
}

GenerateParams replline_params(const ReplParams *rp, uint64_t seed) {
    GenerateParams p = rp->p;
    if (!rp->seed_fixed) p.seed = seed;
    p.nstop = rp->stop[0] != '\0';
    p.stop[0] = rp->stop;
    return p;
}

static void show_stop(const char *s, Buf *out) {
    for (; *s; s++) {
        if (*s == '\n')
            buf_adds(out, "\\n");
        else if (*s == '\t')
            buf_adds(out, "\\t");
        else if (*s == '\\')
            buf_adds(out, "\\\\");
        else
            buf_add(out, s, 1);
    }
}

void replline_show(const ReplParams *rp, Buf *out) {
    for (int i = 0; i < genparams_count; i++) {
        const GenParam *gp = &genparams[i];
        const char *field = (const char *)&rp->p + gp->offset;
        if (gp->type == GENPARAM_INT)
            buf_printf(out, "%s %d\n", gp->name, *(const int *)field);
        else if (gp->type == GENPARAM_FLOAT)
            buf_printf(out, "%s %g\n", gp->name, *(const float *)field);
        else if (rp->seed_fixed)
            buf_printf(out, "%s %llu\n", gp->name, (unsigned long long)*(const uint64_t *)field);
        else
            buf_printf(out, "%s random\n", gp->name);
    }
    buf_adds(out, "stop ");
    if (rp->stop[0])
        show_stop(rp->stop, out);
    else
        buf_adds(out, "(none)");
    buf_adds(out, "\n");
}
