#include "flags.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define FLAGS_MAX 64
static unsigned char given[FLAGS_MAX];

static int parse_value(const Flag *f, const char *s, char *err) {
    char *end;
    errno = 0;
    switch (f->type) {
    case FLAG_INT:
    case FLAG_LONG: {
        long long v = strtoll(s, &end, 10);
        if (!*s || *end || errno) return err_set(err, "--%s: '%s' is not an integer", f->name, s);
        if (f->type == FLAG_INT) {
            if (v < -2147483647LL || v > 2147483647LL)
                return err_set(err, "--%s: %s is out of range", f->name, s);
            *(int *)f->dest = (int)v;
        } else {
            *(long *)f->dest = (long)v;
        }
        return 0;
    }
    case FLAG_U64: {
        if (*s == '-') return err_set(err, "--%s: '%s' must not be negative", f->name, s);
        unsigned long long v = strtoull(s, &end, 10);
        if (!*s || *end || errno) return err_set(err, "--%s: '%s' is not an integer", f->name, s);
        *(uint64_t *)f->dest = v;
        return 0;
    }
    case FLAG_FLOAT:
    case FLAG_DOUBLE: {
        double v = strtod(s, &end);
        if (!*s || *end || errno || !isfinite(v))
            return err_set(err, "--%s: '%s' is not a finite number", f->name, s);
        if (f->type == FLAG_FLOAT)
            *(float *)f->dest = (float)v;
        else
            *(double *)f->dest = v;
        return 0;
    }
    case FLAG_STRING:
        *(const char **)f->dest = s;
        return 0;
    case FLAG_BOOL:
        break;
    }
    return 0;
}

int flags_parse(const Flag *flags, int nflags, int argc, char **argv, int *help, char *err) {
    memset(given, 0, sizeof(given));
    *help = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) return err_set(err, "unexpected argument '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        int k = -1;
        for (int j = 0; j < nflags; j++)
            if (strlen(flags[j].name) == nlen && !strncmp(flags[j].name, name, nlen)) k = j;
        if (k < 0) return err_set(err, "unknown flag '%.*s' (see --help)", (int)nlen + 2, a);
        const Flag *f = &flags[k];
        given[k] = 1;
        if (f->type == FLAG_BOOL) {
            if (eq) return err_set(err, "--%s takes no value", f->name);
            *(int *)f->dest = 1;
            continue;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value) return err_set(err, "--%s needs a value", f->name);
        if (parse_value(f, value, err) != 0) return -1;
    }
    return 0;
}

int flags_given(const Flag *flags, int nflags, const char *name) {
    for (int j = 0; j < nflags && j < FLAGS_MAX; j++)
        if (!strcmp(flags[j].name, name)) return given[j];
    return 0;
}

void flags_print_help(const Flag *flags, int nflags) {
    for (int j = 0; j < nflags; j++) {
        const char *arg = flags[j].type == FLAG_BOOL ? "" : " VALUE";
        char left[64];
        snprintf(left, sizeof(left), "--%s%s", flags[j].name, arg);
        printf("  %-26s %s\n", left, flags[j].help);
    }
}
