/*
 * repl.c — charlm-train repl (trainer/commands.h): a terminal session with a model
 * folder. On a terminal, lines are edited with libedit (history in $XDG_STATE_HOME/charlm/
 * history, else ~/.local/state/charlm/history, mode 0600), each continuation is streamed
 * and followed by a dim line of figures, and Ctrl-C stops a generation; without one
 * (stdin or stdout not a terminal) the same entries are read from stdin and stdout gets
 * the continuations only, one line each. What an entry is: trainer/replline.h.
 */
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <histedit.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include "arch.h"
#include "artefacts.h"
#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "error.h"
#include "generate.h"
#include "replline.h"
#include "utf8.h"

#define DIM   "\033[2m"
#define RED   "\033[31m"
#define RESET "\033[0m"

typedef struct {
    const char *model;
} ReplArgs;

static const CliOpt repl_opts[] = {
    {.name = "model",
     .type = CLI_STRING,
     .placeholder = "DIR",
     .offset = offsetof(ReplArgs, model),
     .required = 1,
     .help = "model folder: vocab.json + model.safetensors"},
};

static const char help_text[] =
    "Enter sends a line; a line ending in \\ goes on with the next; \"\"\" opens and closes\n"
    "a block of lines. A line starting with / is a command (// starts a prompt with /):\n"
    "  /set NAME VALUE  a generation parameter by its API name (/show lists them);\n"
    "                   seed random, stop TEXT (\\n, \\t) or stop with nothing for none\n"
    "  /show            the parameters in force and the model card\n"
    "  /reset           every parameter back to its default\n"
    "  /help            this text\n"
    "  /quit            leave (so does Ctrl-D)\n"
    "Ctrl-C stops a generation, clears the line, and at an empty prompt twice leaves.\n";

// Set by SIGINT while a generation runs. Elsewhere the terminal sends no SIGINT (ISIG is
// off) and at the prompt Ctrl-C is a key (on_ctrl_c): one typed before libedit has the
// terminal reaches it as a key rather than being lost to a signal.
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct {
    const char *dir;
    Model model;
    Vocab vocab;
    ModelInfo info;
    void *scratch;
    ReplParams params;
    int tty, color;
    FILE *say; // what is not a continuation: stdout on a terminal, else stderr
    EditLine *el;
    History *hist;
    char history[4096];   // the file, "" without one
    int more;             // the entry goes on: the prompt says so
    int ctrl_c;           // the Ctrl-C key was pressed: 1 on a line with text, 2 on an empty one
    struct termios saved; // the terminal as it was, restored at the end
    char *line;           // the last line read without a terminal
    size_t line_cap;
} Repl;

static void say_error(Repl *r, const char *msg) {
    fprintf(stderr, "%s%s%s\n", r->color ? RED : "", msg, r->color ? RESET : "");
}

static char *prompt_text(EditLine *el) {
    Repl *r;
    el_get(el, EL_CLIENTDATA, &r);
    return r->more ? "... " : "> ";
}

static unsigned char on_ctrl_c(EditLine *el, int ch) {
    (void)ch;
    Repl *r;
    el_get(el, EL_CLIENTDATA, &r);
    const LineInfo *li = el_line(el);
    r->ctrl_c = li->lastchar == li->buffer ? 2 : 1;
    return CC_NEWLINE;
}

/* mkdir -p of path's folder, each new one 0700. */
static int make_parents(char *path) {
    for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        int rc = mkdir(path, 0700);
        *s = '/';
        if (rc != 0 && errno != EEXIST) return -1;
    }
    return 0;
}

/* The history file, created 0600 when missing; "" (and a warning) when it cannot be. */
static void history_open(Repl *r) {
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (state && state[0] == '/')
        snprintf(r->history, sizeof(r->history), "%s/charlm/history", state);
    else if (home && home[0] == '/')
        snprintf(r->history, sizeof(r->history), "%s/.local/state/charlm/history", home);
    int fd = r->history[0] && make_parents(r->history) == 0
                 ? open(r->history, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)
                 : -1;
    if (fd < 0) {
        fprintf(stderr, "charlm-train: no history file (%s): %s\n",
                r->history[0] ? r->history : "neither XDG_STATE_HOME nor HOME is set",
                strerror(errno));
        r->history[0] = '\0';
        return;
    }
    close(fd);
    HistEvent ev;
    history(r->hist, &ev, H_LOAD, r->history);
}

static int editline_open(Repl *r) {
    HistEvent ev;
    if (!(r->hist = history_init())) return -1;
    history(r->hist, &ev, H_SETSIZE, 1000);
    history(r->hist, &ev, H_SETUNIQUE, 1);
    if (!(r->el = el_init("charlm-train", stdin, stdout, stderr))) return -1;
    el_set(r->el, EL_CLIENTDATA, r);
    el_set(r->el, EL_EDITOR, "emacs");
    el_set(r->el, EL_PROMPT, prompt_text);
    el_set(r->el, EL_HIST, history, r->hist);
    // While a line is edited Ctrl-C is a key, not SIGINT, so that it can clear the line.
    el_set(r->el, EL_SETTY, "-d", "-isig", NULL);
    // The wide call: el_set's narrow EL_ADDFN leaks its copies of the two strings.
    el_wset(r->el, EL_ADDFN, L"charlm-ctrl-c", L"clear the line, or leave", on_ctrl_c);
    el_set(r->el, EL_BIND, "^C", "charlm-ctrl-c", NULL);
    history_open(r);
    return 0;
}

/* ISIG on or off on the terminal (stdin). */
static void set_isig(int on) {
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &t) != 0) return;
    if (on)
        t.c_lflag |= ISIG;
    else
        t.c_lflag &= ~(tcflag_t)ISIG;
    tcsetattr(STDIN_FILENO, TCSADRAIN, &t);
}

/* The next line without its newline, or NULL at the end of the input (Ctrl-D). */
static const char *read_line(Repl *r) {
    if (!r->tty) {
        ssize_t n = getline(&r->line, &r->line_cap, stdin);
        if (n < 0) return NULL;
        if (n > 0 && r->line[n - 1] == '\n') r->line[n - 1] = '\0';
        return r->line;
    }
    int count;
    const char *l = el_gets(r->el, &count);
    if (!l || count <= 0) return NULL;
    free(r->line);
    r->line = strdup(l);
    if (!r->line) return NULL;
    r->line[strcspn(r->line, "\n")] = '\0';
    return r->line;
}

static void history_add(Repl *r, const char *line) {
    HistEvent ev;
    if (!r->tty || !line[0]) return;
    history(r->hist, &ev, H_ENTER, line);
    if (r->history[0]) history(r->hist, &ev, H_SAVE, r->history);
}

static int print_chunk(const char *chunk, size_t len, void *ctx) {
    (void)ctx;
    fwrite(chunk, 1, len, stdout);
    fflush(stdout);
    return interrupted;
}

static void generate(Repl *r, const char *prompt) {
    char err[ERR_LEN];
    long bad = utf8_find_invalid(prompt, strlen(prompt));
    if (bad >= 0) {
        err_set(err, "the prompt is not valid UTF-8 (byte offset %ld)", bad);
        say_error(r, err);
        return;
    }
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) seed = (uint64_t)time(NULL);
    GenerateParams p = replline_params(&r->params, seed & ((1ull << 53) - 1));
    Generation g;
    if (generation_init(&g, &r->model, &r->vocab, prompt, strlen(prompt), &p, err) != 0) {
        say_error(r, err);
        return;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    interrupted = 0;
    if (r->tty) set_isig(1);
    if (generate_run(&g, r->scratch, print_chunk, NULL) != 0) say_error(r, "out of memory");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (r->tty) set_isig(0);
    interrupted = 0;
    putchar('\n');
    if (r->tty) {
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        printf("%s[%d chars, %.0f chars/s, %s, seed %llu%s%s]%s\n", r->color ? DIM : "", g.tokens,
               s > 0 ? g.tokens / s : 0.0, finish_reason_name(g.finish), (unsigned long long)p.seed,
               *g.unknown_chars ? ", skipped prompt chars: " : "", g.unknown_chars,
               r->color ? RESET : "");
    }
    fflush(stdout);
    generation_free(&g);
}

static void show(Repl *r) {
    Buf out = {0};
    ArchField fields[ARCH_MAX_FIELDS];
    int n = r->model.arch->fields(&r->model, fields);
    buf_printf(&out, "model %s: %s, %zu parameters (", r->dir, r->model.arch->name,
               r->model.num_params);
    for (int i = 0; i < n; i++) {
        if (fields[i].text)
            buf_printf(&out, "%s%s %s", i ? ", " : "", fields[i].name, fields[i].text);
        else
            buf_printf(&out, "%s%s %ld", i ? ", " : "", fields[i].name, fields[i].number);
    }
    if (r->info.best_val_loss > 0)
        buf_printf(&out, "), validation loss %.4f nats/char\n", r->info.best_val_loss);
    else
        buf_adds(&out, "), no validation loss recorded\n");
    replline_show(&r->params, &out);
    if (!out.failed) fputs(out.s, r->say);
    buf_free(&out);
}

/* Reads and runs entries until /quit, the end of the input, or Ctrl-C twice at an empty
 * prompt. */
static void session(Repl *r) {
    ReplInput in = {0};
    int empty_ctrl_c = 0; // Ctrl-C presses in a row at an empty prompt
    for (;;) {
        r->more = in.in_block || in.going_on;
        const char *line = read_line(r);
        if (r->ctrl_c) {
            int at_empty = r->ctrl_c == 2 && !r->more;
            r->ctrl_c = 0;
            replline_clear(&in);
            if (!at_empty) {
                empty_ctrl_c = 0;
                continue;
            }
            if (++empty_ctrl_c == 2) break;
            fprintf(r->say, "%s(Ctrl-C again or Ctrl-D to leave)%s\n", r->color ? DIM : "",
                    r->color ? RESET : "");
            continue;
        }
        empty_ctrl_c = 0;
        if (!line) {
            if (r->tty) putchar('\n');
            break;
        }
        history_add(r, line);
        if (!replline_feed(&in, line)) continue;
        ReplCommand c;
        char err[ERR_LEN];
        int quit = 0;
        if (in.text.failed) {
            say_error(r, "out of memory");
        } else if (replline_parse(in.text.s, &c, err) != 0) {
            say_error(r, err);
        } else if (c.kind == REPL_PROMPT) {
            generate(r, c.text);
        } else if (c.kind == REPL_SET) {
            if (replline_set(&r->params, c.name, c.value, err) != 0) say_error(r, err);
        } else if (c.kind == REPL_SHOW) {
            show(r);
        } else if (c.kind == REPL_RESET) {
            replline_defaults(&r->params);
        } else if (c.kind == REPL_HELP) {
            fputs(help_text, r->say);
        } else {
            quit = 1;
        }
        replline_clear(&in);
        if (quit) break;
    }
    replline_free(&in);
}

int commands_repl(int argc, char **argv) {
    CliCommand cmd = {
        .usage = COMMANDS_REPL_USAGE,
        .about = "A session with a model: type a prompt, get its continuation; /help inside.\n",
        CLI_ROWS(repl_opts)};
    ReplArgs a = {0};
    int rc = commands_parse_flags(&cmd, &a, argc, argv);
    if (rc >= 0) return rc;
    char err[ERR_LEN];
    Repl r = {.dir = a.model};
    if (artefacts_load(a.model, &r.model, &r.vocab, &r.info, err) != 0)
        return commands_bad_input(err);
    openblas_set_num_threads(1);
    rc = CLI_EXIT_FAILURE;
    if (!(r.scratch = r.model.arch->scratch_alloc(&r.model, 1, err))) {
        fprintf(stderr, "charlm-train: %s\n", err);
        goto out;
    }
    replline_defaults(&r.params);
    r.tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    r.color = r.tty && !getenv("NO_COLOR");
    r.say = r.tty ? stdout : stderr;
    if (r.tty) {
        // Before el_init, which takes the terminal's settings as those to come back to.
        tcgetattr(STDIN_FILENO, &r.saved);
        set_isig(0);
        if (editline_open(&r) != 0) {
            fprintf(stderr, "charlm-train: cannot set up line editing\n");
            goto out;
        }
        // No SA_RESTART: a generation checks the flag after each step.
        struct sigaction sa = {.sa_handler = on_sigint};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        fprintf(stdout, "%s%s: %s model; /help for the commands, Ctrl-D to leave%s\n",
                r.color ? DIM : "", a.model, r.model.arch->name, r.color ? RESET : "");
    }
    session(&r);
    rc = CLI_EXIT_OK;
out:
    if (r.el) el_end(r.el);
    if (r.tty) tcsetattr(STDIN_FILENO, TCSADRAIN, &r.saved);
    if (r.hist) history_end(r.hist);
    free(r.line);
    if (r.scratch) r.model.arch->scratch_free(r.scratch);
    arch_free(&r.model);
    vocab_free(&r.vocab);
    return rc;
}
