/*
 * test_cli — core/cli's parser, table-driven; the generated --help of both programs
 * against the flag tables of the docs folder's .md files (the contract: README links to
 * them rather than repeating them, and the Docker build's tests see docs/ only); and a few
 * defaults shown by --help checked against what the programs do.
 */
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "error.h"
#include "testutil.h"
#include "server_harness.h"
#include "version.h"

typedef struct {
    int n;
    long l;
    double x;
    float f;
    uint64_t u;
    const char *s, *prompt, *req;
    int b;
    int v;     // a stop row, like --version
    int twice; // computed: 2 * n
} Conf;

static void twice_default(void *config) {
    Conf *c = config;
    c->twice = 2 * c->n;
}

#define CO(f) offsetof(Conf, f)
static const CliOpt opts[] = {
    {.name = "n",
     .env = "TCLI_N",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = CO(n),
     .min = 1,
     .max = 10,
     .def = "5",
     .help = "a small count"},
    {.name = "l",
     .type = CLI_LONG,
     .placeholder = "N",
     .offset = CO(l),
     .def = "-3",
     .help = "a long"},
    {.name = "x",
     .env = "TCLI_X",
     .type = CLI_DOUBLE,
     .placeholder = "X",
     .offset = CO(x),
     .min = 0,
     .max = 1,
     .min_open = 1,
     .def = "1",
     .help = "a fraction"},
    {.name = "f",
     .type = CLI_FLOAT,
     .placeholder = "X",
     .offset = CO(f),
     .min = 0,
     .max = INFINITY,
     .def = "2e-3",
     .help = "a rate"},
    {.name = "u",
     .type = CLI_U64,
     .placeholder = "N",
     .offset = CO(u),
     .def = "42",
     .help = "a seed"},
    {.name = "s",
     .env = "TCLI_S",
     .type = CLI_STRING,
     .placeholder = "TEXT",
     .offset = CO(s),
     .def = "hello",
     .help = "a name"},
    {.name = "prompt",
     .type = CLI_STRING,
     .placeholder = "TEXT",
     .offset = CO(prompt),
     .text = 1,
     .help = "any text"},
    {.name = "b", .type = CLI_BOOL, .offset = CO(b), .help = "a switch"},
    {.name = "twice",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = CO(twice),
     .def = "2 * --n",
     .compute = twice_default,
     .help = "computed"},
};
static const CliCommand cmd = {.usage = "test [options]", .opts = opts, .nopts = 9};

static const CliOpt req_opts[] = {
    {.name = "req",
     .type = CLI_STRING,
     .placeholder = "DIR",
     .offset = CO(req),
     .required = 1,
     .help = "needed"},
    {.name = "s",
     .env = "TCLI_S",
     .type = CLI_STRING,
     .placeholder = "TEXT",
     .offset = CO(s),
     .required = 1,
     .help = "needed too"},
    {.name = "v", .type = CLI_BOOL, .offset = CO(v), .stop = 1, .help = "answered at once"},
};
static const CliCommand req_cmd = {.usage = "test --req DIR", .opts = req_opts, .nopts = 3};

/* Splits s at spaces into argv (no quoting); returns argc. */
static int split(char *s, char **argv, int max) {
    int n = 0;
    for (char *t = strtok(s, " "); t && n < max; t = strtok(NULL, " ")) argv[n++] = t;
    return n;
}

typedef struct {
    const char *args; // space-separated
    const char *env;  // "NAME=value NAME=value", or NULL
    int rc;           // 0, CLI_HELP or -1
    const char *err;  // substring of the message when rc is -1
    int n;
    double x;
    const char *s;
    int b, twice;
} Case;

static const Case cases[] = {
    // Defaults are parsed from the rows' text; computed ones follow the values read.
    {"", NULL, 0, NULL, 5, 1.0, "hello", 0, 10},
    {"--n=3", NULL, 0, NULL, 3, 1.0, "hello", 0, 6},
    {"--n 3", NULL, 0, NULL, 3, 1.0, "hello", 0, 6},
    {"--x 0.25 --s=world --b", NULL, 0, NULL, 5, 0.25, "world", 1, 10},
    {"--twice 7 --n 2", NULL, 0, NULL, 2, 1.0, "hello", 0, 7},
    // Environment first, flags win.
    {"", "TCLI_N=4 TCLI_S=env", 0, NULL, 4, 1.0, "env", 0, 8},
    {"--n 9", "TCLI_N=4", 0, NULL, 9, 1.0, "hello", 0, 18},
    {"--s=flag", "TCLI_S=env", 0, NULL, 5, 1.0, "flag", 0, 10},
    {"--n 2 --help --bogus", NULL, CLI_HELP, NULL, 0, 0, NULL, 0, 0},
    {"-h", NULL, CLI_HELP, NULL, 0, 0, NULL, 0, 0},
    // One line naming the flag or the variable.
    {"--n", NULL, -1, "--n needs a value", 0, 0, NULL, 0, 0},
    {"--bogus 3", NULL, -1, "unknown flag '--bogus' (see --help)", 0, 0, NULL, 0, 0},
    {"--n=", NULL, -1, "--n: '' is not an integer", 0, 0, NULL, 0, 0},
    {"--n 11", NULL, -1, "--n must be an integer from 1 to 10, got '11'", 0, 0, NULL, 0, 0},
    {"--n 0", NULL, -1, "--n must be an integer from 1 to 10, got '0'", 0, 0, NULL, 0, 0},
    {"--n 3x", NULL, -1, "--n: '3x' is not an integer", 0, 0, NULL, 0, 0},
    {"--n 99999999999", NULL, -1, "--n: 99999999999 is out of range", 0, 0, NULL, 0, 0},
    {"--x 0", NULL, -1, "--x must be in (0, 1], got '0'", 0, 0, NULL, 0, 0},
    {"--x 1.5", NULL, -1, "--x must be in (0, 1], got '1.5'", 0, 0, NULL, 0, 0},
    {"--x abc", NULL, -1, "--x: 'abc' is not a finite number", 0, 0, NULL, 0, 0},
    {"--x nan", NULL, -1, "--x: 'nan' is not a finite number", 0, 0, NULL, 0, 0},
    {"--f -1", NULL, -1, "--f must be >= 0, got '-1'", 0, 0, NULL, 0, 0},
    {"--f 1e39", NULL, -1, "--f: '1e39' is not a finite number", 0, 0, NULL, 0, 0},
    {"--u -1", NULL, -1, "--u: '-1' must not be negative", 0, 0, NULL, 0, 0},
    {"--b=1", NULL, -1, "--b takes no value", 0, 0, NULL, 0, 0},
    {"--s=", NULL, -1, "--s must not be empty", 0, 0, NULL, 0, 0},
    {"stray", NULL, -1, "unexpected argument 'stray'", 0, 0, NULL, 0, 0},
    {"", "TCLI_N=http", -1, "TCLI_N: 'http' is not an integer", 0, 0, NULL, 0, 0},
    {"", "TCLI_N=20", -1, "TCLI_N must be an integer from 1 to 10, got '20'", 0, 0, NULL, 0, 0},
    {"", "TCLI_S=", -1, "TCLI_S must not be empty", 0, 0, NULL, 0, 0},
};

static void set_env(const char *env, int set) {
    if (!env) return;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", env);
    for (char *t = strtok(buf, " "); t; t = strtok(NULL, " ")) {
        char *eq = strchr(t, '=');
        *eq = '\0';
        if (set)
            setenv(t, eq + 1, 1);
        else
            unsetenv(t);
    }
}

START_TEST(test_parse_table) {
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const Case *c = &cases[i];
        char buf[256], *argv[16], err[ERR_LEN] = "";
        snprintf(buf, sizeof(buf), "%s", c->args);
        int argc = split(buf, argv, 16);
        Conf conf = {0};
        set_env(c->env, 1);
        int rc = cli_parse(&cmd, &conf, argc, argv, err);
        set_env(c->env, 0);
        ck_assert_msg(rc == c->rc, "'%s' [%s]: rc %d, expected %d (%s)", c->args,
                      c->env ? c->env : "", rc, c->rc, err);
        if (rc < 0) {
            ck_assert_msg(strcmp(err, c->err) == 0, "'%s' [%s]: '%s', expected '%s'", c->args,
                          c->env ? c->env : "", err, c->err);
            continue;
        }
        if (rc == CLI_HELP) continue;
        ck_assert_msg(conf.n == c->n && conf.x == c->x && strcmp(conf.s, c->s) == 0 &&
                          conf.b == c->b && conf.twice == c->twice,
                      "'%s': n %d x %g s %s b %d twice %d", c->args, conf.n, conf.x, conf.s, conf.b,
                      conf.twice);
        ck_assert_int_eq(conf.l, -3);
        ck_assert_float_eq(conf.f, 2e-3f);
        ck_assert_uint_eq(conf.u, 42);
    }
}
END_TEST

typedef struct {
    CliList origins;
} ListConf;

static const CliOpt list_opts[] = {
    {.name = "origin",
     .env = "TCLI_ORIGIN",
     .type = CLI_LIST,
     .placeholder = "ORIGIN",
     .offset = offsetof(ListConf, origins),
     .help = "repeatable"},
};
static const CliCommand list_cmd = {.usage = "test", .opts = list_opts, .nopts = 1};

// A list flag keeps every value given; the variable is one value that flags replace.
static const struct {
    const char *args, *env;
    int rc;
    const char *want; // the values joined by '|', or the error
} list_cases[] = {
    {"", NULL, 0, ""},
    {"", "TCLI_ORIGIN=http://a", 0, "http://a"},
    {"--origin http://b --origin=http://c", NULL, 0, "http://b|http://c"},
    {"--origin http://b", "TCLI_ORIGIN=http://a", 0, "http://b"},
    {"--origin", NULL, -1, "--origin needs a value"},
    {"--origin=", NULL, -1, "--origin must not be empty"},
    {"--origin a --origin a --origin a --origin a --origin a --origin a --origin a --origin a "
     "--origin a --origin a --origin a --origin a --origin a --origin a --origin a --origin a",
     NULL, 0, "a|a|a|a|a|a|a|a|a|a|a|a|a|a|a|a"},
    {"--origin a --origin a --origin a --origin a --origin a --origin a --origin a --origin a "
     "--origin a --origin a --origin a --origin a --origin a --origin a --origin a --origin a "
     "--origin b",
     NULL, -1, "--origin: at most 16 values"},
};

START_TEST(test_list_flags) {
    for (size_t i = 0; i < sizeof(list_cases) / sizeof(list_cases[0]); i++) {
        char buf[512], *argv[40], err[ERR_LEN] = "", got[512] = "";
        snprintf(buf, sizeof(buf), "%s", list_cases[i].args);
        int argc = split(buf, argv, 40);
        ListConf conf = {0};
        set_env(list_cases[i].env, 1);
        int rc = cli_parse(&list_cmd, &conf, argc, argv, err);
        set_env(list_cases[i].env, 0);
        ck_assert_msg(rc == list_cases[i].rc, "'%s': rc %d (%s)", list_cases[i].args, rc, err);
        if (rc < 0) {
            ck_assert_str_eq(err, list_cases[i].want);
            continue;
        }
        for (int k = 0; k < conf.origins.n; k++)
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? "|" : "",
                     conf.origins.value[k]);
        ck_assert_msg(strcmp(got, list_cases[i].want) == 0, "'%s': '%s', expected '%s'",
                      list_cases[i].args, got, list_cases[i].want);
    }
}
END_TEST

START_TEST(test_text_strings_and_required) {
    // A text row takes empty values and control characters; a plain string takes neither.
    char a1[] = "--prompt=", a2[] = "--prompt", a3[] = "line\none";
    char *argv1[] = {a1}, *argv2[] = {a2, a3};
    Conf conf = {0};
    char err[ERR_LEN];
    ck_assert_int_eq(cli_parse(&cmd, &conf, 1, argv1, err), 0);
    ck_assert_str_eq(conf.prompt, "");
    ck_assert_int_eq(cli_parse(&cmd, &conf, 2, argv2, err), 0);
    ck_assert_str_eq(conf.prompt, "line\none");
    char b1[] = "--s", b2[] = "a\tb";
    char *argv3[] = {b1, b2};
    ck_assert_int_eq(cli_parse(&cmd, &conf, 2, argv3, err), -1);
    ck_assert_str_eq(err, "--s must not contain control characters");

    char r1[] = "--req", r2[] = "dir", r3[] = "--s", r4[] = "x";
    char *argv4[] = {r1, r2};
    ck_assert_int_eq(cli_parse(&req_cmd, &conf, 2, argv4, err), -1);
    ck_assert_str_eq(err, "--s (or TCLI_S) is required (see --help)");
    char *argv5[] = {r3, r4};
    ck_assert_int_eq(cli_parse(&req_cmd, &conf, 2, argv5, err), -1);
    ck_assert_str_eq(err, "--req is required (see --help)");
    setenv("TCLI_S", "from-env", 1);
    ck_assert_int_eq(cli_parse(&req_cmd, &conf, 2, argv4, err), 0);
    unsetenv("TCLI_S");
    ck_assert_str_eq(conf.req, "dir");
    ck_assert_str_eq(conf.s, "from-env");
    // --help wins over a missing required flag.
    char h[] = "--help";
    char *argv6[] = {h};
    ck_assert_int_eq(cli_parse(&req_cmd, &conf, 1, argv6, err), CLI_HELP);
    // So does a stop row (--version), which is set and ends the reading there.
    char v[] = "--v", bogus[] = "--bogus";
    char *argv7[] = {r1, r2, v, bogus};
    conf.v = 0;
    ck_assert_int_eq(cli_parse(&req_cmd, &conf, 4, argv7, err), CLI_STOP);
    ck_assert_int_eq(conf.v, 1);
    char *argv8[] = {r1, r2};
    conf.v = 0;
    setenv("TCLI_S", "x", 1);
    ck_assert_int_eq(cli_parse(&req_cmd, &conf, 2, argv8, err), 0);
    unsetenv("TCLI_S");
    ck_assert_int_eq(conf.v, 0);
}
END_TEST

START_TEST(test_help_lines) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cli_help(&cmd, f);
    fclose(f);
    const char *want[] = {
        "usage: test [options]\n",
        "\n  --n N          a small count (default: 5; range 1 to 10) [TCLI_N]\n",
        "\n  --x X          a fraction (default: 1; range (0, 1]) [TCLI_X]\n",
        "\n  --f X          a rate (default: 2e-3; range >= 0)\n",
        "\n  --b            a switch (default: off)\n",
        "\n  --twice N      computed (default: 2 * --n)\n",
        "\n  -h, --help     this text\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(text, want[i]) != NULL, "--help lacks '%s':\n%s", want[i], text);
    free(text);
    f = open_memstream(&text, &len);
    cli_help(&req_cmd, f);
    fclose(f);
    ck_assert_msg(strstr(text, "  --req DIR   needed (required)\n") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "  --s TEXT    needed too (required) [TCLI_S]\n") != NULL, "%s",
                  text);
    free(text);
}
END_TEST

/* ---- The docs check: every flag's default in --help against the markdown tables. ---- */

#define MAX_FLAGS 32

typedef struct {
    const char *label;   // for messages
    const char *program; // the binary
    const char *args;    // what prints the help
    const char *keyword; // a heading or text naming the command contains it
    int nflags;
    char name[MAX_FLAGS][32];
    char def[MAX_FLAGS][64];
    int covered[MAX_FLAGS];
} HelpCmd;

// A table that fits several commands goes to the one its section names last before it.
static HelpCmd helps[] = {
    {"charlm-train sample", "charlm-train", "sample --help", "sample", 0, {{0}}, {{0}}, {0}},
    {"charlm-train eval", "charlm-train", "eval --help", "eval", 0, {{0}}, {{0}}, {0}},
    {"charlm-server", "charlm-server", "--help", "server", 0, {{0}}, {{0}}, {0}},
    {"charlm-train train", "charlm-train", "train --help", "train", 0, {{0}}, {{0}}, {0}},
    {"charlm-train train --arch gpt",
     "charlm-train",
     "train --arch gpt --help",
     "--arch gpt",
     0,
     {{0}},
     {{0}},
     {0}},
    {"charlm-train repl", "charlm-train", "repl --help", "repl", 0, {{0}}, {{0}}, {0}},
};
#define NHELPS ((int)(sizeof(helps) / sizeof(helps[0])))

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

/* Reads "  --name P   help (default: D; range R) [ENV]" lines: D, or "required". */
static void help_read(HelpCmd *h, const char *text) {
    h->nflags = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        char buf[1024];
        snprintf(buf, sizeof(buf), "%.*s", (int)(end - line), line);
        line = *end ? end + 1 : end;
        if (strncmp(buf, "  --", 4) != 0 || h->nflags == MAX_FLAGS) continue;
        int i = h->nflags++;
        snprintf(h->name[i], sizeof(h->name[i]), "%.*s", (int)strcspn(buf + 4, " "), buf + 4);
        h->covered[i] = 0;
        char *d = NULL, *at = buf;
        while ((at = strstr(at, "(default: ")) != NULL) d = at += 10;
        if (!d) {
            ck_assert_msg(strstr(buf, "(required") != NULL, "%s --help: no default in '%s'",
                          h->label, buf);
            snprintf(h->def[i], sizeof(h->def[i]), "required");
            continue;
        }
        d[strcspn(d, ";)")] = '\0';
        snprintf(h->def[i], sizeof(h->def[i]), "%s", d);
    }
    ck_assert_msg(h->nflags > 0, "%s --help lists no flags", h->label);
}

static int help_find(const HelpCmd *h, const char *name) {
    for (int i = 0; i < h->nflags; i++)
        if (strcmp(h->name[i], name) == 0) return i;
    return -1;
}

/* Splits a "| a | b |" row into trimmed cells (in place); returns the count. */
static int cells(char *row, char **out, int max) {
    char *s = trim(row);
    if (*s == '|') s++;
    size_t n = strlen(s);
    if (n && s[n - 1] == '|') s[n - 1] = '\0';
    int k = 0;
    for (char *c = s; k < max;) {
        char *bar = strchr(c, '|');
        if (bar) *bar = '\0';
        out[k++] = trim(c);
        if (!bar) break;
        c = bar + 1;
    }
    return k;
}

static int is_separator(const char *line) {
    int dashes = 0;
    for (; *line; line++) {
        if (*line == '-') dashes++;
        if (!strchr("|-: \t", *line)) return 0;
    }
    return dashes > 0;
}

/* "`--max-tokens N`" -> "max-tokens"; 0 when the cell does not start with a backticked flag. */
static int cell_flag(const char *cell, char *name, size_t len) {
    if (strncmp(cell, "`--", 3) != 0) return 0;
    size_t n = strspn(cell + 3, "abcdefghijklmnopqrstuvwxyz0123456789-");
    snprintf(name, len, "%.*s", (int)n, cell + 3);
    return n > 0;
}

static void strip_ticks(char *s) {
    char *w = s;
    for (; *s; s++)
        if (*s != '`') *w++ = *s;
    *w = '\0';
}

typedef struct {
    char flag[32], def[128];
    int line;
} DocRow;

#define APPEND(msgs, ...)                                                                          \
    do {                                                                                           \
        size_t used_ = strlen(msgs);                                                               \
        snprintf(msgs + used_, 8192 - used_, __VA_ARGS__);                                         \
    } while (0)

/* Which of helps[] a table of rows belongs to, given the text of its section: the command
 * that has all its flags; when several do and their defaults differ, the one the section
 * names. -1 with a message when none fits. */
static int table_owner(const DocRow *rows, int n, const char *context, const char *name,
                       const char *where, char *msgs, int *all_agree) {
    int fits[NHELPS], nfit = 0;
    for (int h = 0; h < NHELPS; h++) {
        fits[h] = 1;
        for (int r = 0; r < n; r++)
            if (help_find(&helps[h], rows[r].flag) < 0) fits[h] = 0;
        nfit += fits[h];
    }
    *all_agree = 0;
    if (nfit == 0) {
        for (int r = 0; r < n; r++) {
            int known = 0;
            for (int h = 0; h < NHELPS; h++) known |= help_find(&helps[h], rows[r].flag) >= 0;
            if (!known) {
                APPEND(msgs, "%s:%d: --%s is a flag of neither program\n", name, rows[r].line,
                       rows[r].flag);
                return -1;
            }
        }
        APPEND(msgs, "%s: the table mixes flags of different commands\n", where);
        return -1;
    }
    int first = -1, agree = 1;
    for (int h = 0; h < NHELPS; h++) {
        if (!fits[h]) continue;
        if (first < 0) {
            first = h;
            continue;
        }
        for (int r = 0; r < n; r++) {
            const char *a = helps[first].def[help_find(&helps[first], rows[r].flag)];
            if (strcmp(a, helps[h].def[help_find(&helps[h], rows[r].flag)]) != 0) agree = 0;
        }
    }
    if (agree) {
        *all_agree = 1;
        return first;
    }
    int best = -1;
    const char *best_at = NULL;
    for (int h = 0; h < NHELPS; h++) {
        if (!fits[h]) continue;
        for (const char *at = context; (at = strcasestr(at, helps[h].keyword)) != NULL; at++)
            if (!best_at || at > best_at) best = h, best_at = at;
    }
    if (best >= 0) return best;
    APPEND(msgs,
           "%s: the table's flags are those of several commands with different defaults; "
           "name the command (e.g. 'charlm-train sample') in the heading above it\n",
           where);
    return -1;
}

static void check_table(const DocRow *rows, int n, const char *context, const char *name,
                        const char *where, char *msgs) {
    int agree;
    int owner = table_owner(rows, n, context, name, where, msgs, &agree);
    if (owner < 0) return;
    for (int h = 0; h < NHELPS; h++) {
        if (h != owner && !agree) continue;
        HelpCmd *hc = &helps[h];
        int fits = 1;
        for (int r = 0; r < n; r++) fits &= help_find(hc, rows[r].flag) >= 0;
        if (!fits) continue;
        for (int r = 0; r < n; r++) {
            int i = help_find(hc, rows[r].flag);
            hc->covered[i] = 1;
            if (strcmp(rows[r].def, hc->def[i]) != 0)
                APPEND(msgs, "%s:%d: --%s (%s): the table's default is '%s', --help says '%s'\n",
                       name, rows[r].line, rows[r].flag, hc->label, rows[r].def, hc->def[i]);
        }
    }
}

/* Checks every table of one markdown file whose header has "flag" and "default" cells. */
static void docs_check_text(const char *name, const char *text, char *msgs) {
    char *copy = strdup(text);
    char *lines[4096];
    int nl = 0;
    for (char *p = copy; p && nl < 4096;) {
        lines[nl++] = p;
        p = strchr(p, '\n');
        if (p) *p++ = '\0';
    }
    int section = 0; // first line of the current section (its heading)
    for (int i = 0; i < nl; i++) {
        if (lines[i][0] == '#') section = i;
        if (trim(lines[i])[0] != '|' || i + 1 >= nl || !is_separator(lines[i + 1])) continue;
        char head[1024], *hc[32];
        snprintf(head, sizeof(head), "%s", lines[i]);
        int nh = cells(head, hc, 32), fcol = -1, dcol = -1;
        for (int k = 0; k < nh; k++) {
            if (strcasecmp(hc[k], "flag") == 0) fcol = k;
            if (strcasecmp(hc[k], "default") == 0) dcol = k;
        }
        char context[8192] = "";
        for (int k = section; k < i; k++)
            snprintf(context + strlen(context), sizeof(context) - strlen(context), "%s\n",
                     lines[k]);
        int start = i;
        for (i += 2; i < nl && trim(lines[i])[0] == '|'; i++) {
        }
        if (fcol < 0 || dcol < 0) continue;
        DocRow rows[64];
        int n = 0;
        for (int k = start + 2; k < i && n < 64; k++) {
            char row[2048], *c[32];
            snprintf(row, sizeof(row), "%s", lines[k]);
            int nc = cells(row, c, 32);
            if (nc <= fcol || nc <= dcol || !cell_flag(c[fcol], rows[n].flag, 32)) continue;
            if (strcmp(rows[n].flag, "help") == 0) continue;
            snprintf(rows[n].def, sizeof(rows[n].def), "%s", c[dcol]);
            strip_ticks(rows[n].def);
            char *t = trim(rows[n].def);
            memmove(rows[n].def, t, strlen(t) + 1);
            rows[n].line = k + 1;
            n++;
        }
        char where[512];
        snprintf(where, sizeof(where), "%s:%d", name, start + 1);
        if (n > 0) check_table(rows, n, context, name, where, msgs);
    }
    free(copy);
}

static void helps_load(void) {
    for (int h = 0; h < NHELPS; h++) {
        char cmdline[4096], *out, *err;
        snprintf(cmdline, sizeof(cmdline), "%s %s", tu_bin(helps[h].program), helps[h].args);
        ck_assert_msg(tu_run(cmdline, &out, &err) == 0, "%s: %s", cmdline, err);
        help_read(&helps[h], out);
        free(out);
        free(err);
    }
}

static void coverage_check(char *msgs) {
    for (int h = 0; h < NHELPS; h++)
        for (int i = 0; i < helps[h].nflags; i++)
            if (!helps[h].covered[i])
                APPEND(msgs,
                       "--%s of %s (default '%s') is in no flag table (columns 'flag' and "
                       "'default') of docs/*.md\n",
                       helps[h].name[i], helps[h].label, helps[h].def[i]);
}

START_TEST(test_docs_check_catches_drift) {
    // The checker itself, on a page that gets one default wrong and leaves flags out.
    helps_load();
    const char *page = "# charlm-train sample\n\n"
                       "| flag | default | meaning |\n"
                       "| --- | --- | --- |\n"
                       "| `--model DIR` | required | folder |\n"
                       "| `--max-tokens N` | `2000` | chars |\n"
                       "\n## charlm-train eval\n\n"
                       "| flag | variable | default |\n"
                       "|---|---|---|\n"
                       "| `--model` | | required |\n"
                       "| `--val-frac X` | | 1 |\n"
                       "\n| option | default |\n|---|---|\n| `--nonsense` | 3 |\n";
    char msgs[8192] = "";
    docs_check_text("page.md", page, msgs);
    ck_assert_msg(strstr(msgs, "page.md:6: --max-tokens (charlm-train sample): the table's "
                               "default is '2000', --help says '200'") != NULL,
                  "%s", msgs);
    ck_assert_msg(strstr(msgs, "--val-frac") == NULL, "%s", msgs);
    ck_assert_msg(strstr(msgs, "nonsense") == NULL, "a table without a flag column: %s", msgs);
    msgs[0] = '\0';
    coverage_check(msgs);
    ck_assert_msg(
        strstr(msgs, "--prompt of charlm-train sample (default 'off') is in no flag table") != NULL,
        "%s", msgs);
    ck_assert_msg(strstr(msgs, "--port of charlm-server (default '8080') is in no flag table") !=
                      NULL,
                  "%s", msgs);
    ck_assert_msg(strstr(msgs, "--model of charlm-train eval") == NULL, "%s", msgs);

    // A table whose flags fit several commands with different defaults needs its section.
    msgs[0] = '\0';
    docs_check_text("page.md", "| flag | default |\n|--|--|\n| `--seed N` | 42 |\n", msgs);
    ck_assert_msg(strstr(msgs, "name the command") != NULL, "%s", msgs);
    msgs[0] = '\0';
    docs_check_text("page.md", "## Training\n| flag | default |\n|--|--|\n| `--seed N` | 42 |\n",
                    msgs);
    ck_assert_msg(msgs[0] == '\0', "%s", msgs);
}
END_TEST

START_TEST(test_docs_match_help) {
    helps_load();
    char msgs[8192] = "", path[4096];
    const char *dir = CHARLM_SOURCE_DIR "/docs";
    char *names[64];
    int n = 0;
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot read %s", dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL && n < 64;) {
        size_t len = strlen(e->d_name);
        if (len > 3 && strcmp(e->d_name + len - 3, ".md") == 0) {
            snprintf(path, sizeof(path), "docs/%s", e->d_name);
            names[n++] = strdup(path);
        }
    }
    if (d) closedir(d);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", CHARLM_SOURCE_DIR, names[i]);
        char *text = tu_read_file(path, NULL);
        ck_assert_msg(text != NULL, "cannot read %s", path);
        docs_check_text(names[i], text, msgs);
        free(text);
        free(names[i]);
    }
    coverage_check(msgs);
    ck_assert_msg(msgs[0] == '\0', "the docs and --help disagree:\n%s", msgs);
}
END_TEST

/* Every number a command takes shows its range in --help: the rows with a numeric
 * placeholder, but for train's --seed, which takes any 64-bit value. */
START_TEST(test_help_shows_ranges) {
    helps_load();
    for (int h = 0; h < NHELPS; h++) {
        char cmdline[4096], *out, *err;
        snprintf(cmdline, sizeof(cmdline), "%s %s", tu_bin(helps[h].program), helps[h].args);
        ck_assert_int_eq(tu_run(cmdline, &out, &err), 0);
        for (const char *line = out; (line = strstr(line, "\n  --")) != NULL; line++) {
            char row[1024], name[64], ph[32] = "";
            snprintf(row, sizeof(row), "%.*s", (int)strcspn(line + 1, "\n"), line + 1);
            if (sscanf(row, "  --%63s %31s", name, ph) < 2) continue;
            int numeric =
                strcmp(ph, "N") == 0 || strcmp(ph, "X") == 0 || strcmp(ph, "SECONDS") == 0;
            if (!numeric || (strncmp(helps[h].label, "charlm-train train", 18) == 0 &&
                             strcmp(name, "seed") == 0))
                continue;
            ck_assert_msg(strstr(row, "; range ") != NULL, "%s --help shows no range:\n%s",
                          helps[h].label, row);
        }
        free(out);
        free(err);
    }
}
END_TEST

/* docs/CLI.md's synopsis of charlm-server (the code block under its heading) names every
 * flag --help lists. */
START_TEST(test_server_synopsis) {
    helps_load();
    char *doc = tu_read_file(CHARLM_SOURCE_DIR "/docs/CLI.md", NULL);
    ck_assert_msg(doc != NULL, "cannot read docs/CLI.md");
    const char *head = strstr(doc, "\n## charlm-server\n");
    ck_assert_msg(head != NULL, "docs/CLI.md has no '## charlm-server' section");
    const char *open = strstr(head, "\n```\n");
    const char *close = open ? strstr(open + 5, "\n```") : NULL;
    ck_assert_msg(close != NULL, "docs/CLI.md: no synopsis block under '## charlm-server'");
    char *synopsis = strndup(open, (size_t)(close - open));
    const HelpCmd *server = &helps[2];
    ck_assert_str_eq(server->label, "charlm-server");
    for (int i = 0; i < server->nflags; i++) {
        char flag[48];
        snprintf(flag, sizeof(flag), "[--%s", server->name[i]);
        const char *at = strstr(synopsis, flag);
        while (at && !strchr(" ]", at[strlen(flag)])) at = strstr(at + 1, flag);
        ck_assert_msg(at != NULL, "docs/CLI.md's charlm-server synopsis lacks --%s:%s",
                      server->name[i], synopsis);
    }
    free(synopsis);
    free(doc);
}
END_TEST

// Both signals drain (server/main.c's loop); the help of --drain-timeout says so.
START_TEST(test_drain_help_names_both_signals) {
    char cmdline[4096], *out, *err;
    snprintf(cmdline, sizeof(cmdline), "%s --help", tu_bin("charlm-server"));
    ck_assert_int_eq(tu_run(cmdline, &out, &err), 0);
    const char *row = strstr(out, "  --drain-timeout ");
    ck_assert(row != NULL);
    char line[1024];
    snprintf(line, sizeof(line), "%.*s", (int)strcspn(row, "\n"), row);
    ck_assert_msg(strstr(line, "SIGTERM") && strstr(line, "SIGINT"), "%s", line);
    free(out);
    free(err);
}
END_TEST

/* ---- Defaults in force: what --help says is what the programs do. ---- */

static const char *help_default(const char *label, const char *flag) {
    for (int h = 0; h < NHELPS; h++) {
        if (strcmp(helps[h].label, label) != 0) continue;
        int i = help_find(&helps[h], flag);
        ck_assert_msg(i >= 0, "%s has no --%s", label, flag);
        return helps[h].def[i];
    }
    ck_abort_msg("no command %s", label);
    return NULL;
}

static void suite_setup(void) {
    suite_model_make(2000, 8, 16, 1, 3);
}

static void suite_teardown(void) {
    suite_model_remove();
}

START_TEST(test_defaults_in_force) {
    helps_load();
    int max_tokens = atoi(help_default("charlm-server", "max-tokens"));
    int max_prompt = atoi(help_default("charlm-server", "max-prompt"));
    int sample_tokens = atoi(help_default("charlm-train sample", "max-tokens"));
    ck_assert_int_eq(max_tokens, 2000);
    ck_assert_int_eq(sample_tokens, 200);
    start_default();
    char body[16384];
    snprintf(body, sizeof(body), "{\"prompt\": \"a\", \"max_tokens\": %d}", max_tokens + 1);
    Resp r = http_post(S.port, "/generate", body);
    assert_error(&r, 400, "max_tokens");
    resp_free(&r);
    snprintf(body, sizeof(body), "{\"prompt\": \"a\", \"max_tokens\": %d}", max_tokens);
    r = http_post(S.port, "/generate", body);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    cJSON *j = resp_json(&r);
    ck_assert_int_eq((int)json_num(j, "tokens"), max_tokens);
    cJSON_Delete(j);
    resp_free(&r);
    // Without max_tokens the server generates what sample's --help gives as its default.
    r = http_post(S.port, "/generate", "{\"prompt\": \"a\"}");
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    j = resp_json(&r);
    ck_assert_int_eq((int)json_num(j, "tokens"), sample_tokens);
    cJSON_Delete(j);
    resp_free(&r);
    // A prompt one char over --max-prompt's default is refused, one at it is taken.
    int n = snprintf(body, sizeof(body), "{\"prompt\": \"");
    for (int i = 0; i <= max_prompt; i++) body[n++] = 'a';
    snprintf(body + n, sizeof(body) - (size_t)n, "\", \"max_tokens\": 1}");
    r = http_post(S.port, "/generate", body);
    assert_error(&r, 400, "prompt");
    resp_free(&r);
    snprintf(body + n - 1, sizeof(body) - (size_t)n + 1, "\", \"max_tokens\": 1}");
    r = http_post(S.port, "/generate", body);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    stop_default();

    // charlm-train sample: the same default length.
    char cmdline[4096], *out, *err;
    snprintf(cmdline, sizeof(cmdline), "%s sample --model '%s' --prompt a", tu_bin("charlm-train"),
             model_dir);
    ck_assert_msg(tu_run(cmdline, &out, &err) == 0, "%s", err);
    char want[64];
    snprintf(want, sizeof(want), "charlm-train: %d chars, finish length, seed ", sample_tokens);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    free(out);
    free(err);
}
END_TEST

START_TEST(test_server_exit_codes_and_model_lookup) {
    char cmdline[8192], *out, *err;
    // A CHARLM_STATIC_DIR that names no folder is a bad variable.
    snprintf(cmdline, sizeof(cmdline), "CHARLM_STATIC_DIR=%s/none %s --model '%s' --port 0", root,
             tu_bin("charlm-server"), model_dir);
    ck_assert_int_eq(tu_run(cmdline, &out, &err), CLI_EXIT_BAD_INPUT);
    ck_assert_msg(strstr(err, "CHARLM_STATIC_DIR") != NULL, "%s", err);
    free(out);
    free(err);
    // An explicit --model artefacts is taken as given: relative to the working folder.
    snprintf(cmdline, sizeof(cmdline), "cd '%s' && %s --model artefacts --port 0", root,
             tu_bin("charlm-server"));
    ck_assert_int_eq(tu_run(cmdline, &out, &err), CLI_EXIT_FAILURE);
    ck_assert_msg(strstr(err, "cannot load the model from artefacts") != NULL, "%s", err);
    free(out);
    free(err);
    // Without --model, from a folder with no artefacts/, the one beside the program.
    snprintf(cmdline, sizeof(cmdline), "%s/../artefacts/model.safetensors", CHARLM_BINARY_DIR);
    if (access(cmdline, F_OK) != 0) return; // a build folder outside the source tree
    snprintf(cmdline, sizeof(cmdline), "%s/stderr", root);
    char bin[4096];
    snprintf(bin, sizeof(bin), "%s", tu_bin("charlm-server"));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(cmdline, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 2) < 0 || chdir(root) != 0) _exit(127);
        execl(bin, bin, "--port", "0", (char *)NULL);
        _exit(127);
    }
    char *log = NULL;
    for (int waited = 0; waited < 30000; waited += 10) {
        free(log);
        log = tu_read_file(cmdline, NULL);
        if (log && strstr(log, "listening on")) break;
        if (waitpid(pid, NULL, WNOHANG) == pid) break;
        sleep_ms(10);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    ck_assert_msg(log && strstr(log, "/../artefacts: vocab") && strstr(log, "listening on"), "%s",
                  log ? log : "");
    free(log);
}
END_TEST

/* The build's version is git describe of the source tree, else the VERSION file; both
 * programs print it on one line for --version, wherever it stands (required flags missing,
 * a bad flag after it), and exit 0. */
START_TEST(test_version) {
    char *out = NULL, *err = NULL, want[256], cmdline[4096];
    snprintf(cmdline, sizeof(cmdline),
             "git -C '%s' describe --always 2>/dev/null || head -n1 '%s/VERSION'",
             CHARLM_SOURCE_DIR, CHARLM_SOURCE_DIR);
    ck_assert_int_eq(tu_run(cmdline, &out, NULL), 0);
    out[strcspn(out, "\n")] = '\0';
    // The build's text may add -dirty to what describe says now.
    ck_assert_msg(*out && strncmp(charlm_version, out, strlen(out)) == 0,
                  "the build says '%s', the tree '%s'", charlm_version, out);
    free(out);
    const char *runs[][2] = {{"charlm-train", "--version"},
                             {"charlm-train", "train --version --bogus"},
                             {"charlm-train", "--arch gpt --version"},
                             {"charlm-server", "--port 1 --version"}};
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        snprintf(cmdline, sizeof(cmdline), "%s %s", tu_bin(runs[i][0]), runs[i][1]);
        ck_assert_msg(tu_run(cmdline, &out, &err) == 0, "%s: %s", cmdline, err);
        snprintf(want, sizeof(want), "%s %s\n", runs[i][0], charlm_version);
        ck_assert_str_eq(out, want);
        ck_assert_str_eq(err, "");
        free(out);
        free(err);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_table);
    tcase_add_test(tc, test_list_flags);
    tcase_add_test(tc, test_text_strings_and_required);
    tcase_add_test(tc, test_help_lines);
    suite_add_tcase(s, tc);
    tc = tcase_create("docs");
    tcase_add_test(tc, test_docs_check_catches_drift);
    tcase_add_test(tc, test_docs_match_help);
    tcase_add_test(tc, test_help_shows_ranges);
    tcase_add_test(tc, test_server_synopsis);
    tcase_add_test(tc, test_drain_help_names_both_signals);
    suite_add_tcase(s, tc);
    tc = tcase_create("programs");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_defaults_in_force);
    tcase_add_test(tc, test_server_exit_codes_and_model_lookup);
    tcase_add_test(tc, test_version);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
