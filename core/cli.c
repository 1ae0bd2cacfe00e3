#include "cli.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

#define CLI_MAX_OPTS 64

static int has_range(const CliOpt *o) {
    return o->min != o->max;
}

static int is_whole(CliType t) {
    return t == CLI_INT || t == CLI_LONG || t == CLI_U64;
}

// Integers print without an exponent, so 2^53 reads as 9007199254740992.
static void num_text(double v, char *buf, size_t len) {
    if (v == floor(v) && fabs(v) < 1e17)
        snprintf(buf, len, "%.0f", v);
    else
        snprintf(buf, len, "%g", v);
}

/* "0 to 65535" for whole numbers, "(0, 1]" for others, ">= 0" with no upper bound. */
static void range_text(const CliOpt *o, char *buf, size_t len) {
    char lo[32], hi[32];
    num_text(o->min, lo, sizeof(lo));
    num_text(o->max, hi, sizeof(hi));
    if (isinf(o->max))
        snprintf(buf, len, "%s %s", o->min_open ? ">" : ">=", lo);
    else if (is_whole(o->type))
        snprintf(buf, len, "%s to %s", lo, hi);
    else
        snprintf(buf, len, "%c%s, %s%c", o->min_open ? '(' : '[', lo, hi, o->max_open ? ')' : ']');
}

static int check_range(const CliOpt *o, double v, const char *source, const char *s, char *err) {
    if (!has_range(o)) return 0;
    if (v > o->min && v < o->max) return 0;
    if ((v == o->min && !o->min_open) || (v == o->max && !o->max_open)) return 0;
    char range[96];
    range_text(o, range, sizeof(range));
    if (isinf(o->max)) return err_set(err, "%s must be %s, got '%s'", source, range, s);
    if (is_whole(o->type))
        return err_set(err, "%s must be an integer from %s, got '%s'", source, range, s);
    return err_set(err, "%s must be in %s, got '%s'", source, range, s);
}

/* Parses s as the row's type into its field; source names the flag or variable. */
static int set_value(const CliOpt *o, void *config, const char *s, const char *source, char *err) {
    char *field = (char *)config + o->offset, *end;
    errno = 0;
    switch (o->type) {
    case CLI_INT:
    case CLI_LONG: {
        long long v = strtoll(s, &end, 10);
        if (!*s || *end) return err_set(err, "%s: '%s' is not an integer", source, s);
        long long lo = o->type == CLI_INT ? INT_MIN : LONG_MIN;
        long long hi = o->type == CLI_INT ? INT_MAX : LONG_MAX;
        if (errno || v < lo || v > hi) return err_set(err, "%s: %s is out of range", source, s);
        if (check_range(o, (double)v, source, s, err)) return -1;
        if (o->type == CLI_INT)
            *(int *)field = (int)v;
        else
            *(long *)field = (long)v;
        return 0;
    }
    case CLI_U64: {
        if (*s == '-') return err_set(err, "%s: '%s' must not be negative", source, s);
        unsigned long long v = strtoull(s, &end, 10);
        if (!*s || *end) return err_set(err, "%s: '%s' is not an integer", source, s);
        if (errno) return err_set(err, "%s: %s is out of range", source, s);
        if (check_range(o, (double)v, source, s, err)) return -1;
        *(uint64_t *)field = v;
        return 0;
    }
    case CLI_FLOAT:
    case CLI_DOUBLE: {
        double v = strtod(s, &end);
        if (!*s || *end || errno || !isfinite(v) || (o->type == CLI_FLOAT && fabs(v) > FLT_MAX))
            return err_set(err, "%s: '%s' is not a finite number", source, s);
        if (check_range(o, v, source, s, err)) return -1;
        if (o->type == CLI_FLOAT)
            *(float *)field = (float)v;
        else
            *(double *)field = v;
        return 0;
    }
    case CLI_STRING:
    case CLI_LIST:
        if (!o->text) {
            if (!*s) return err_set(err, "%s must not be empty", source);
            for (const char *p = s; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                    return err_set(err, "%s must not contain control characters", source);
        }
        if (o->type == CLI_STRING) {
            *(const char **)field = s;
            return 0;
        }
        CliList *l = (CliList *)field;
        if (l->n == CLI_LIST_MAX)
            return err_set(err, "%s: at most %d values", source, CLI_LIST_MAX);
        l->value[l->n++] = s;
        return 0;
    case CLI_BOOL:
        if (strcmp(s, "0") != 0 && strcmp(s, "1") != 0)
            return err_set(err, "%s must be 0 or 1, got '%s'", source, s);
        *(int *)field = s[0] == '1';
        return 0;
    }
    return err_set(err, "%s: unknown type", source);
}

static const CliOpt *find_flag(const CliCommand *cmd, const char *name, size_t len) {
    for (int i = 0; i < cmd->nopts; i++)
        if (strlen(cmd->opts[i].name) == len && strncmp(cmd->opts[i].name, name, len) == 0)
            return &cmd->opts[i];
    return NULL;
}

int cli_parse(const CliCommand *cmd, void *config, int argc, char **argv, char *err) {
    unsigned char given[CLI_MAX_OPTS] = {0}, flagged[CLI_MAX_OPTS] = {0};
    char source[128];
    if (cmd->nopts > CLI_MAX_OPTS) return err_set(err, "more than %d flags", CLI_MAX_OPTS);
    for (int i = 0; i < cmd->nopts; i++) {
        const CliOpt *o = &cmd->opts[i];
        if (o->def && !o->compute) {
            snprintf(source, sizeof(source), "the default of --%s", o->name);
            if (set_value(o, config, o->def, source, err)) return -1;
        }
    }
    for (int i = 0; i < cmd->nopts; i++) {
        const CliOpt *o = &cmd->opts[i];
        const char *v = o->env ? getenv(o->env) : NULL;
        if (!v) continue;
        if (o->type == CLI_LIST) ((CliList *)((char *)config + o->offset))->n = 0;
        if (set_value(o, config, v, o->env, err)) return -1;
        given[i] = 1;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return CLI_HELP;
        if (strncmp(a, "--", 2) != 0) return err_set(err, "unexpected argument '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const CliOpt *o = find_flag(cmd, name, len);
        if (!o) return err_set(err, "unknown flag '%.*s' (see --help)", (int)len + 2, a);
        snprintf(source, sizeof(source), "--%s", o->name);
        given[o - cmd->opts] = 1;
        // A list's flags replace what the default and the variable put in it.
        if (o->type == CLI_LIST && !flagged[o - cmd->opts]) {
            flagged[o - cmd->opts] = 1;
            ((CliList *)((char *)config + o->offset))->n = 0;
        }
        if (o->type == CLI_BOOL) {
            if (eq) return err_set(err, "%s takes no value", source);
            *(int *)((char *)config + o->offset) = 1;
            if (o->stop) return CLI_STOP;
            continue;
        }
        const char *value = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!value) return err_set(err, "%s needs a value", source);
        if (set_value(o, config, value, source, err)) return -1;
    }
    for (int i = 0; i < cmd->nopts; i++) {
        const CliOpt *o = &cmd->opts[i];
        if (given[i]) continue;
        if (o->required) {
            if (o->env)
                return err_set(err, "--%s (or %s) is required (see --help)", o->name, o->env);
            return err_set(err, "--%s is required (see --help)", o->name);
        }
        if (o->compute) o->compute(config);
    }
    return 0;
}

void cli_help(const CliCommand *cmd, FILE *f) {
    char left[CLI_MAX_OPTS][64];
    int width = (int)strlen("-h, --help");
    for (int i = 0; i < cmd->nopts && i < CLI_MAX_OPTS; i++) {
        const CliOpt *o = &cmd->opts[i];
        int n = snprintf(left[i], sizeof(left[i]), "--%s%s%s", o->name, o->placeholder ? " " : "",
                         o->placeholder ? o->placeholder : "");
        if (n > width) width = n;
    }
    fprintf(f, "usage: %s\n\n", cmd->usage);
    if (cmd->about) fprintf(f, "%s\n", cmd->about);
    for (int i = 0; i < cmd->nopts && i < CLI_MAX_OPTS; i++) {
        const CliOpt *o = &cmd->opts[i];
        char range[96] = "", r[80];
        if (has_range(o)) {
            range_text(o, r, sizeof(r));
            snprintf(range, sizeof(range), "; range %s", r);
        }
        fprintf(f, "  %-*s  %s ", width, left[i], o->help);
        if (o->required)
            fprintf(f, "(required%s)", range);
        else
            fprintf(f, "(default: %s%s)", o->def ? o->def : "off", range);
        if (o->env) fprintf(f, " [%s]", o->env);
        fputc('\n', f);
    }
    fprintf(f, "  %-*s  this text\n", width, "-h, --help");
    if (cmd->after) fprintf(f, "\n%s", cmd->after);
}

int cli_program_dir(char *buf, size_t len) {
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash) return -1;
    if (slash == buf) slash++; // the program is in /
    *slash = '\0';
    return 0;
}
