/*
 * test_repl — charlm-train repl end to end. Through a pseudo-terminal (forkpty), as a
 * person would use it: greedy /set then a prompt prints what `sample` gives; a bad /set
 * is one line and changes nothing; Ctrl-C stops a long generation within 100 ms and the
 * next prompt works; Ctrl-C at an empty prompt twice, or Ctrl-D, leaves with status 0;
 * the history file is written with mode 0600. Piped (an LSTM and a GPT): stdout holds only
 * the continuations, each equal to `sample`'s, multi-line entries included.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpt.h"
#include "model.h"
#include "testutil.h"

static const ModelConfig HYPER = {.embed = 16, .hidden = 32, .layers = 1};
// The terminal tests use the LSTM; the piped one both, the GPT's context (16) far shorter
// than its texts.
static const GptConfig GPT_HYPER = {
    .layers = 1, .heads = 2, .embed = 16, .block = 16, .norm = GPT_LAYERNORM, .bias = 1};
static char *root, *model_dir, *gpt_dir, *state_dir;

static void suite_setup(void) {
    root = tu_tmpdir();
    char *text = tu_sample_text(2000);
    model_dir = malloc(4096);
    state_dir = malloc(4096);
    snprintf(model_dir, 4096, "%s/model", root);
    gpt_dir = malloc(4096);
    snprintf(state_dir, 4096, "%s/state", root);
    snprintf(gpt_dir, 4096, "%s/gpt", root);
    ck_assert_int_eq(tu_make_arch_dir(model_dir, text, "lstm", &HYPER, 3), 0);
    ck_assert_int_eq(tu_make_arch_dir(gpt_dir, text, "gpt", &GPT_HYPER, 3), 0);
    free(text);
}

static void suite_teardown(void) {
    tu_rmtree(root);
    free(root);
    free(model_dir);
    free(gpt_dir);
    free(state_dir);
}

/* The continuation `charlm-train sample` prints for prompt with these flags. */
static char *sample_text(const char *dir, const char *prompt, const char *flags) {
    char cmd[8192], *out;
    snprintf(cmd, sizeof cmd, "%s sample --model '%s' --prompt '%s' %s", tu_bin("charlm-train"),
             dir, prompt, flags);
    ck_assert_int_eq(tu_run(cmd, &out, NULL), 0);
    size_t plen = strlen(prompt), olen = strlen(out);
    ck_assert(olen > plen && out[olen - 1] == '\n');
    char *cont = strndup(out + plen, olen - plen - 1);
    free(out);
    return cont;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

typedef struct {
    pid_t pid;
    int fd;
    char out[1 << 16]; // everything the terminal showed, without '\r'
    size_t len, mark;  // mark: where the next expect starts looking
} Pty;

static void pty_start(Pty *p) {
    memset(p, 0, sizeof(*p));
    p->pid = forkpty(&p->fd, NULL, NULL, NULL);
    ck_assert_int_ge(p->pid, 0);
    if (p->pid == 0) {
        setenv("XDG_STATE_HOME", state_dir, 1);
        setenv("TERM", "xterm", 1);
        unsetenv("NO_COLOR");
        execl(tu_bin("charlm-train"), "charlm-train", "repl", "--model", model_dir, (char *)NULL);
        _exit(127);
    }
}

/* Reads until needle shows after the mark (then the mark moves past it): 1, or 0 after
 * timeout_ms. */
static int pty_expect(Pty *p, const char *needle, int timeout_ms) {
    double end = now_ms() + timeout_ms;
    for (;;) {
        const char *at = strstr(p->out + p->mark, needle);
        if (at) {
            p->mark = (size_t)(at - p->out) + strlen(needle);
            return 1;
        }
        int left = (int)(end - now_ms());
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, left) <= 0) return 0;
        char buf[4096];
        ssize_t n = read(p->fd, buf, sizeof buf);
        if (n <= 0) return 0;
        for (ssize_t i = 0; i < n && p->len + 1 < sizeof p->out; i++)
            if (buf[i] != '\r') p->out[p->len++] = buf[i];
        p->out[p->len] = '\0';
    }
}

static void pty_send(Pty *p, const char *s) {
    ck_assert_int_eq(write(p->fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Waits for the program to leave: its exit status, or -1 if it has not within 5 s. */
static int pty_wait(Pty *p) {
    for (int i = 0; i < 500; i++) {
        int status;
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            close(p->fd);
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        pty_expect(p, "\001never", 10); // reads what it prints as it leaves
        usleep(10 * 1000);              // once it has closed the terminal, reads fail at once
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    close(p->fd);
    return -1;
}

/* The last of what the terminal showed, for a failure's message (check cuts long ones). */
static const char *tail(const Pty *p) {
    return p->out + (p->len > 1000 ? p->len - 1000 : 0);
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *at = hay; (at = strstr(at, needle)) != NULL; at += strlen(needle)) n++;
    return n;
}

/* Waits for the prompt, and a little more: libedit prints it just before it takes the
 * terminal, and what is typed in between is read by the terminal's line discipline (keys
 * echoed twice, a Ctrl-C left in its line buffer), as it would be for a person typing
 * faster than the program starts. */
static void at_prompt(Pty *p) {
    ck_assert_msg(pty_expect(p, "> ", 5000), "no prompt: %s", tail(p));
    usleep(100 * 1000);
}

START_TEST(test_terminal_session) {
    char *greedy = sample_text(model_dir, "the cat", "--temperature 0 --max-tokens 60 --seed 1");
    static Pty p;
    pty_start(&p);
    at_prompt(&p);
    pty_send(&p, "/set temperature 0\n");
    at_prompt(&p);
    pty_send(&p, "/set max_tokens 60\n");
    at_prompt(&p);
    pty_send(&p, "the cat\n");
    ck_assert_msg(pty_expect(&p, "[60 chars", 5000), "no stats line: %s", tail(&p));
    ck_assert_msg(strstr(p.out, greedy) != NULL, "want '%s' in:\n%s", greedy, tail(&p));
    ck_assert_msg(strstr(p.out, "\033[2m[60 chars") != NULL, "the stats line is not dim");
    at_prompt(&p);

    // A bad /set: one line, and nothing changes.
    size_t before = p.len;
    pty_send(&p, "/set temperature -1\n");
    ck_assert(pty_expect(&p, "temperature must be >= 0", 5000));
    at_prompt(&p);
    ck_assert_msg(count(p.out + before, "\n") == 2, "%s", tail(&p)); // the echo, the error
    pty_send(&p, "/show\n");
    ck_assert(pty_expect(&p, "temperature 0\n", 5000));
    at_prompt(&p);

    // Ctrl-C stops a long generation at once, and the next prompt works.
    pty_send(&p, "/set max_tokens 1000000\n");
    at_prompt(&p);
    pty_send(&p, "the\n");
    ck_assert(pty_expect(&p, "the\n", 5000));
    usleep(300 * 1000); // generating
    size_t generated = p.len;
    double t0 = now_ms();
    pty_send(&p, "\003");
    ck_assert_msg(pty_expect(&p, "cancelled", 2000), "not stopped: %s", tail(&p));
    double waited = now_ms() - t0;
    ck_assert_msg(waited < 100, "Ctrl-C took %.1f ms", waited);
    ck_assert_msg(p.len > generated + 50, "it was not generating");
    at_prompt(&p);
    pty_send(&p, "/set max_tokens 5\n");
    at_prompt(&p);
    pty_send(&p, "/set seed 3\n");
    at_prompt(&p);
    pty_send(&p, "the\n");
    ck_assert_msg(pty_expect(&p, "[5 chars", 5000), "%s", tail(&p));
    ck_assert(pty_expect(&p, "seed 3]", 5000));
    at_prompt(&p);

    // Ctrl-C on a line with text clears it; at an empty prompt it says how to leave.
    pty_send(&p, "abc\003");
    at_prompt(&p);
    pty_send(&p, "\003");
    ck_assert(pty_expect(&p, "Ctrl-C again", 5000));
    at_prompt(&p);
    ck_assert_msg(count(p.out, "[5 chars") == 1, "abc was sent: %s", tail(&p));

    pty_send(&p, "\004"); // Ctrl-D
    ck_assert_int_eq(pty_wait(&p), 0);

    char path[4096];
    snprintf(path, sizeof path, "%s/charlm/history", state_dir);
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "no %s", path);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    char *hist = tu_read_file(path, NULL);
    ck_assert_msg(hist && strstr(hist, "max_tokens") && strstr(hist, "temperature"), "%s", hist);
    free(hist);
    free(greedy);
}
END_TEST

START_TEST(test_ctrl_c_twice_leaves) {
    static Pty p;
    pty_start(&p);
    at_prompt(&p);
    pty_send(&p, "\003");
    ck_assert_msg(pty_expect(&p, "Ctrl-C again", 5000), "%s", tail(&p));
    at_prompt(&p);
    pty_send(&p, "\003");
    ck_assert_int_eq(pty_wait(&p), 0);
}
END_TEST

START_TEST(test_piped) {
    const char *dir = _i ? gpt_dir : model_dir;
    const char *flags = "--temperature 0.7 --top-k 5 --max-tokens 30 --seed 8";
    char *a = sample_text(dir, "the dog", flags);
    char *b = sample_text(dir, "ran\nto", flags);
    char *c = sample_text(dir, "", "--temperature 0.7 --top-k 5 --max-tokens 30 --seed 9");
    char script[2048], cmd[8192], *out, *err;
    snprintf(script, sizeof script,
             "/set temperature 0.7\n/set top_k 5\n/set max_tokens 30\n/set seed 8\n"
             "the dog\n/set top_k 0.5\n/set nonsense 1\nran\\\nto\n/show\n/set seed 9\n"
             "\"\"\"\n\"\"\"\n/quit\nnever\n");
    char *path = tu_write_file(root, "script.txt", script, strlen(script));
    snprintf(cmd, sizeof cmd, "%s repl --model '%s' < '%s'", tu_bin("charlm-train"), dir, path);
    ck_assert_int_eq(tu_run(cmd, &out, &err), 0);
    char want[4096];
    snprintf(want, sizeof want, "%s\n%s\n%s\n", a, b, c);
    ck_assert_msg(strcmp(out, want) == 0, "got:\n%s\nwant:\n%s", out, want);
    ck_assert_msg(strstr(err, "top_k must be an integer\n") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "unknown parameter \"nonsense\"") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "\ntop_k 5\n") != NULL, "/show goes to stderr: %s", err);
    ck_assert_msg(strchr(out, '\033') == NULL && strchr(err, '\033') == NULL, "colours");
    free(out);
    free(err);
    free(path);
    free(a);
    free(b);
    free(c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("repl");
    TCase *tc = tcase_create("repl");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_terminal_session);
    tcase_add_test(tc, test_ctrl_c_twice_leaves);
    tcase_add_loop_test(tc, test_piped, 0, 2);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
