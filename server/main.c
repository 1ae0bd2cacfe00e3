#include <arpa/inet.h>
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "chat.h"
#include "cli.h"
#include "error.h"
#include "fileio.h"
#include "filestore.h"
#include "gen.h"
#include "genparams.h"
#include "hostcheck.h"
#include "http.h"
#include "info.h"
#include "metrics.h"
#include "models.h"
#include "routes.h"
#include "scheduler.h"
#include "server.h"
#include "static.h"
#include "train.h"
#include "tuning.h"
#include "version.h"

// Once the drain's generations are cancelled, their clients get this long to take the
// rest of their replies.
#define DELIVER_SECONDS 2
// Descriptors beyond the connections: the model, the page's files, the log, libraries.
#define SPARE_FDS 64

static void threads_default(void *config) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ((ServerConfig *)config)->threads = cpus > 0 ? (int)cpus : 1;
}

// A model folder has model.safetensors in it; the rest artefacts_load checks.
static int is_model_dir(const char *dir) {
    char *p = path_join(dir, "model.safetensors");
    int ok = p && access(p, F_OK) == 0;
    free(p);
    return ok;
}

/* Without --model, CHARLM_MODEL or --models: ./artefacts, else the one installed beside
 * the program (<program dir>/../artefacts), as the page folder is found. A value given is
 * taken as it is. */
static void model_default(void *config) {
    static char beside[4096 + 16];
    char dir[4096];
    ServerConfig *c = config;
    if (c->models_dir) return;
    c->model_dirs.n = 1;
    c->model_dirs.value[0] = "artefacts";
    if (is_model_dir("artefacts") || cli_program_dir(dir, sizeof(dir)) != 0) return;
    snprintf(beside, sizeof(beside), "%s/../artefacts", dir);
    if (is_model_dir(beside)) c->model_dirs.value[0] = beside;
}

/* The charlm-train installed or built beside this program. */
static void trainer_default(void *config) {
    static char path[4096 + 16];
    char dir[4096];
    ServerConfig *c = config;
    if (cli_program_dir(dir, sizeof(dir)) != 0) {
        c->trainer = "charlm-train";
        return;
    }
    snprintf(path, sizeof(path), "%s/charlm-train", dir);
    c->trainer = path;
}

/* A --model without its --model-id is named by models.c after its folder. */
static void model_ids_default(void *config) {
    (void)config;
}

// The server's settings and limits: their defaults and ranges are stated here only.
#define SC(f) offsetof(ServerConfig, f)
static const CliOpt server_opts[] = {
    {.name = "model",
     .env = "CHARLM_MODEL",
     .type = CLI_LIST,
     .placeholder = "DIR",
     .offset = SC(model_dirs),
     .def = "artefacts",
     .compute = model_default,
     .help = "a model folder: model.safetensors + vocab.json (+ train_log.jsonl); repeatable"},
    {.name = "models",
     .env = "CHARLM_MODELS",
     .type = CLI_STRING,
     .placeholder = "DIR",
     .offset = SC(models_dir),
     .help = "also serve every subfolder of DIR that holds a model, by name"},
    {.name = "host",
     .env = "CHARLM_HOST",
     .type = CLI_STRING,
     .placeholder = "ADDR",
     .offset = SC(host),
     .def = "127.0.0.1",
     .help = "address to listen on"},
    {.name = "port",
     .env = "CHARLM_PORT",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = SC(port),
     .min = 0,
     .max = 65535,
     .def = "8080",
     .help = "port, 0 = any free one"},
    {.name = "threads",
     .env = "CHARLM_THREADS",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = SC(threads),
     .min = 1,
     .max = 1024,
     .def = "online CPUs",
     .compute = threads_default,
     .help = "generation workers, each stepping its requests as one batch"},
    {.name = "prefill-chunk",
     .env = "CHARLM_PREFILL_CHUNK",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = SC(prefill_chunk),
     .min = 1,
     .max = 4096,
     .def = "64",
     .help = "prompts of at least N chars are fed as sequences, N chars between decode steps; "
             "shorter ones (and all, with 1) char by char in the batch"},
    {.name = "max-tokens",
     .env = "CHARLM_MAX_TOKENS",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = SC(max_tokens),
     .min = 1,
     .max = GEN_MAX_TOKENS_LIMIT,
     .def = "2000",
     .help = "largest max_tokens a request may ask for"},
    {.name = "max-prompt",
     .env = "CHARLM_MAX_PROMPT",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = SC(max_prompt),
     .min = 0,
     .max = 10000000,
     .def = "8192",
     .help = "longest prompt, in chars"},
    {.name = "max-body",
     .env = "CHARLM_MAX_BODY",
     .type = CLI_LONG,
     .placeholder = "N",
     .offset = SC(max_body),
     .min = 2,
     .max = 1L << 30,
     .def = "65536",
     .help = "largest request body, in bytes"},
    {.name = "max-concurrent",
     .env = "CHARLM_MAX_CONCURRENT",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = SC(max_concurrent),
     .min = 1,
     .max = 100000,
     .def = "64",
     .help = "generations in flight before 503"},
    {.name = "max-waiting-bytes",
     .env = "CHARLM_MAX_WAITING_BYTES",
     .type = CLI_LONG,
     .placeholder = "N",
     .offset = SC(max_waiting_bytes),
     .min = 1,
     .max = 1L << 40,
     .def = "1073741824",
     .help = "memory done replies may hold while their clients read them; past it new "
             "generation requests get 503"},
    {.name = "max-connections",
     .env = "CHARLM_MAX_CONNECTIONS",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = SC(max_conns),
     .min = 1,
     .max = 1000000,
     .def = "4096",
     .help = "open connections; past it the one idle the longest (no request in flight) is "
             "closed"},
    {.name = "max-connections-per-ip",
     .env = "CHARLM_MAX_CONNECTIONS_PER_IP",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = SC(max_conns_per_ip),
     .min = 0,
     .max = 1000000,
     .def = "0",
     .help = "open connections from one client address, 0 = no limit; past it a new one is "
             "closed at once (behind a proxy every client is one address)"},
    {.name = "idle-timeout",
     .env = "CHARLM_IDLE_TIMEOUT",
     .type = CLI_INT,
     .placeholder = "SECONDS",
     .offset = SC(idle_timeout),
     .min = 1,
     .max = 3600,
     .def = "10",
     .help = "close a connection that makes no progress for this long: sends nothing and "
             "takes none of its reply"},
    {.name = "drain-timeout",
     .env = "CHARLM_DRAIN_TIMEOUT",
     .type = CLI_INT,
     .placeholder = "SECONDS",
     .offset = SC(drain_timeout),
     .min = 0,
     .max = 3600,
     .def = "5",
     .help = "on SIGTERM or SIGINT, time running generations get before they are cancelled"},
    {.name = "cors-origin",
     .env = "CHARLM_CORS_ORIGIN",
     .type = CLI_LIST,
     .placeholder = "ORIGIN",
     .offset = SC(cors_origins),
     .help = "allow browser calls from ORIGIN or * (repeatable; commas or spaces separate "
             "several in one value)"},
    {.name = "allowed-host",
     .env = "CHARLM_ALLOWED_HOST",
     .type = CLI_LIST,
     .placeholder = "NAME",
     .offset = SC(allowed_hosts),
     .help = "listening on loopback without a key, also answer requests whose Host is NAME "
             "(or any, for *), besides localhost and loopback addresses (repeatable)"},
    {.name = "api-key",
     .env = "CHARLM_API_KEY",
     .type = CLI_STRING,
     .placeholder = "KEY",
     .offset = SC(api_key),
     .help = "require Authorization: Bearer KEY on every route but /, /static/ and /health"},
    {.name = "api-key-file",
     .env = "CHARLM_API_KEY_FILE",
     .type = CLI_STRING,
     .placeholder = "FILE",
     .offset = SC(api_key_file),
     .help = "the same with the keys in FILE, one a line; all of them and --api-key are valid"},
    {.name = "model-id",
     .env = "CHARLM_MODEL_ID",
     .type = CLI_LIST,
     .placeholder = "ID",
     .offset = SC(model_ids),
     .def = "model folder's name",
     .compute = model_ids_default,
     .help = "the k-th --model's name in /v1/models and in every answer; repeatable"},
    {.name = "chat-template",
     .env = "CHARLM_CHAT_TEMPLATE",
     .type = CLI_STRING,
     .placeholder = "FILE",
     .offset = SC(chat_template_file),
     .help = "how /v1/chat/completions turns messages into a prompt (docs/API.md)"},
    {.name = "training-dir",
     .env = "CHARLM_TRAINING_DIR",
     .type = CLI_STRING,
     .placeholder = "DIR",
     .offset = SC(training_dir),
     .help = "turn on the training routes (/v1/files, /v1/fine_tuning/jobs): uploads, jobs and "
             "their models live in DIR"},
    {.name = "max-upload",
     .env = "CHARLM_MAX_UPLOAD",
     .type = CLI_LONG,
     .placeholder = "BYTES",
     .offset = SC(max_upload),
     .min = 1,
     .max = 1L << 32,
     .def = "67108864",
     .help = "largest file POST /v1/files takes, in bytes"},
    {.name = "training-threads",
     .env = "CHARLM_TRAINING_THREADS",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = SC(training_threads),
     .min = 1,
     .max = TRAIN_MAX_THREADS,
     .def = "1",
     .help = "threads of a fine-tuning job's trainer (one job runs at a time, niced)"},
    {.name = "trainer",
     .env = "CHARLM_TRAINER",
     .type = CLI_STRING,
     .placeholder = "PATH",
     .offset = SC(trainer),
     .def = "charlm-train beside this program",
     .compute = trainer_default,
     .help = "the charlm-train that runs fine-tuning jobs"},
    {.name = "max-uploads",
     .env = "CHARLM_MAX_UPLOADS",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = SC(max_uploads),
     .min = 1,
     .max = 1000,
     .def = "2",
     .help = "uploads to POST /v1/files in progress at once before 503"},
    {.name = "version",
     .type = CLI_BOOL,
     .offset = SC(version),
     .stop = 1,
     .help = "print the program's version and exit"},
};

static const CliCommand server_cmd = {
    .usage = SERVER_NAME " [options]",
    // .about is server_about(): it lists the route table.
    CLI_ROWS(server_opts),
    .after = "Without --model or CHARLM_MODEL the model is ./artefacts, else\n"
             "<program dir>/../artefacts.\n"
             "The static page folder is $CHARLM_STATIC_DIR, else ./static, else\n"
             "<program dir>/../static, else <program dir>/../share/charlm/static, else\n"
             "/usr/share/charlm/static.\n"
             "Exit codes: 0 stopped by SIGTERM/SIGINT, 1 failure (model, port),\n"
             "2 bad flag or variable.\n",
};

/* The text --help shows above the flags: the route list comes from the route table, so it
 * names every route the server answers. */
static const char *server_about(void) {
    static char text[4096];
    int n = snprintf(text, sizeof(text),
                     "Serves charlm models over HTTP. Routes (with API keys configured, all but\n"
                     "those marked open need Authorization: Bearer KEY; docs/API.md):\n");
    int k = routes_help_text(text + n, sizeof(text) - (size_t)n);
    if (k > 0) n += k;
    if ((size_t)n < sizeof(text))
        snprintf(text + n, sizeof(text) - (size_t)n,
                 "Every flag can also be set by the environment variable in brackets; "
                 "flags win.\n");
    return text;
}

// Binds the listening socket ourselves so that a taken port or a bad address is one
// clear line, and port 0 can report the port the kernel chose.
static int listen_on(const char *host, int port, char *shown, size_t shown_cap, char *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc) {
        err_set(err, "cannot resolve --host %s: %s", host, gai_strerror(rc));
        return -2; // a bad flag value, not a runtime failure
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return err_set(err, "cannot create a socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(res);
        return err_set(err, "cannot listen on %s port %d: %s", host, port, strerror(e));
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char addr[INET6_ADDRSTRLEN] = "?";
    int actual = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
            actual = ntohs(s6->sin6_port);
            snprintf(shown, shown_cap, "http://[%s]:%d", addr, actual);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
            actual = ntohs(s4->sin_port);
            snprintf(shown, shown_cap, "http://%s:%d", addr, actual);
        }
    }
    return fd;
}

// A model the registry loads gets its card, then its id's metrics series (last: nothing
// after it can fail, so a refused model leaves no series behind); both go with the
// model's last reference.
static int model_loaded(ServedModel *m, char *err) {
    if (info_card_attach(m, err) != 0) return -1;
    m->metrics_slot = metrics_model_get(m->id, m->model.num_params);
    return 0;
}

static void model_dropped(ServedModel *m) {
    metrics_model_put(m->metrics_slot);
    info_card_detach(m);
}

static void free_all(void) {
    tuning_stop(0);
    gen_stop();
    sched_stop();
    auth_free();
    if (srv.cfg.chat_template) chat_template_free((ChatTemplate *)srv.cfg.chat_template);
    free(srv.static_dir);
    models_stop();
}

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t signals_seen;

static void on_signal(int sig) {
    char c = (char)sig;
    if (sig != SIGHUP) signals_seen++;
    ssize_t n = write(sig_pipe[1], &c, 1);
    (void)n;
}

// Waits for admitted replies to be delivered, for at most `seconds` or until another
// signal.
static void wait_undelivered(int seconds) {
    for (int i = 0; i < seconds * 100 && atomic_load(&srv.undelivered) > 0 && signals_seen < 2; i++)
        usleep(10000);
}

/* Every connection gets a descriptor: the soft limit (often 1024) goes up to the hard one,
 * and --max-connections down to what that allows. Returns the limit when it lowered
 * --max-connections (said once the server is up, so a failing start stays one line),
 * else 0. */
static unsigned long long fit_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)srv.cfg.max_conns + SPARE_FDS)
        return 0;
    srv.cfg.max_conns =
        rl.rlim_cur > 2 * SPARE_FDS ? (int)(rl.rlim_cur - SPARE_FDS) : (int)rl.rlim_cur / 2;
    return (unsigned long long)rl.rlim_cur;
}

int main(int argc, char **argv) {
    char err[ERR_LEN];
    int parsed = cli_parse(&server_cmd, &srv.cfg, argc - 1, argv + 1, err);
    if (parsed == CLI_HELP) {
        CliCommand help = server_cmd;
        help.about = server_about();
        cli_help(&help, stdout);
        return CLI_EXIT_OK;
    }
    if (parsed == CLI_STOP) { // --version, the one stop row
        printf(SERVER_NAME " %s\n", charlm_version);
        return CLI_EXIT_OK;
    }
    if (parsed < 0) {
        fprintf(stderr, SERVER_NAME ": %s\n", err);
        return CLI_EXIT_BAD_INPUT;
    }
    if (srv.cfg.cors_origins.n && !http_cors_origins()) {
        fprintf(stderr, SERVER_NAME ": --cors-origin (CHARLM_CORS_ORIGIN) names no origin\n");
        return CLI_EXIT_BAD_INPUT;
    }
    // CHARLM_STATIC_DIR is a variable like the others: a wrong one is bad input; so are
    // keys that cannot be read.
    if (static_init(err) || auth_init(srv.cfg.api_key, srv.cfg.api_key_file, err) ||
        hostcheck_init(&srv.cfg.allowed_hosts, err)) {
        fprintf(stderr, SERVER_NAME ": %s\n", err);
        return CLI_EXIT_BAD_INPUT;
    }

    if (srv.cfg.training_dir && filestore_init(srv.cfg.training_dir, err)) {
        fprintf(stderr, SERVER_NAME ": --training-dir %s: %s\n", srv.cfg.training_dir, err);
        return CLI_EXIT_BAD_INPUT;
    }

    static ChatTemplate chat_template;
    if (srv.cfg.chat_template_file) {
        if (chat_template_load(srv.cfg.chat_template_file, &chat_template, err)) {
            fprintf(stderr, SERVER_NAME ": --chat-template %s: %s\n", srv.cfg.chat_template_file,
                    err);
            return CLI_EXIT_BAD_INPUT;
        }
        srv.cfg.chat_template = &chat_template;
    }

    // Each generation's steps are tiny products on its own thread; OpenBLAS threads on top
    // would only contend with the other generations for the same cores.
    openblas_set_num_threads(1);

    // SIGTERM/SIGINT go through a self-pipe: OpenBLAS starts its threads before main, so
    // blocking the signals for sigwait could not cover every thread, and a handler works in
    // whichever thread the kernel picks. A second signal skips the drain wait.
    if (pipe2(sig_pipe, O_CLOEXEC) != 0) {
        perror(SERVER_NAME ": pipe");
        return CLI_EXIT_FAILURE;
    }
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    // The fine-tuning jobs' models are served as --models' subfolders are.
    static char jobs_models[4096 + 8];
    if (srv.cfg.training_dir)
        snprintf(jobs_models, sizeof(jobs_models), "%s/models", srv.cfg.training_dir);
    const ModelsConfig models = {
        .dirs = &srv.cfg.model_dirs,
        .ids = &srv.cfg.model_ids,
        .models_dir = srv.cfg.models_dir,
        .jobs_dir = srv.cfg.training_dir ? jobs_models : NULL,
        .log_name = SERVER_NAME,
        .hooks = {model_loaded, model_dropped},
    };
    int loaded = models_start(&models, err);
    if (loaded) {
        fprintf(stderr, SERVER_NAME ": %s\n", err);
        return loaded == -2 ? CLI_EXIT_BAD_INPUT : CLI_EXIT_FAILURE;
    }
    srv.started = time(NULL);
    int asked_conns = srv.cfg.max_conns;
    unsigned long long fd_limit = fit_fd_limit();
    TuningConfig tuning = {srv.cfg.training_dir, srv.cfg.trainer, srv.cfg.training_threads};
    if (routes_init(err) || sched_start(srv.cfg.threads, err) || gen_start(err) ||
        (srv.cfg.training_dir && tuning_start(&tuning, err))) {
        fprintf(stderr, SERVER_NAME ": %s\n", err);
        free_all();
        return CLI_EXIT_FAILURE;
    }

    char url[128] = "";
    int fd = listen_on(srv.cfg.host, srv.cfg.port, url, sizeof(url), err);
    if (fd < 0) {
        fprintf(stderr, SERVER_NAME ": %s\n", err);
        free_all();
        return fd == -2 ? CLI_EXIT_BAD_INPUT : CLI_EXIT_FAILURE;
    }
    hostcheck_listening(fd, auth_enabled());
    struct MHD_Daemon *d = http_start(fd, &routes_router, err);
    if (!d) {
        fprintf(stderr, SERVER_NAME ": %s\n", err);
        close(fd);
        free_all();
        return CLI_EXIT_FAILURE;
    }
    models_log();
    if (fd_limit)
        fprintf(stderr,
                SERVER_NAME ": --max-connections %d lowered to %d (open files limit %llu)\n",
                asked_conns, srv.cfg.max_conns, fd_limit);
    if (!srv.static_dir) fprintf(stderr, SERVER_NAME ": no static/ folder found; GET / is 404\n");
    if (auth_enabled())
        fprintf(stderr, SERVER_NAME ": API keys required (all routes but /, /static/, /health)\n");
    fprintf(stderr, SERVER_NAME ": listening on %s\n", url);

    // SIGHUP reloads the models; SIGTERM or SIGINT stops.
    char sig = 0;
    for (;;) {
        if (read(sig_pipe[0], &sig, 1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (sig != SIGHUP) break;
        free(models_reload());
    }
    fprintf(stderr, SERVER_NAME ": %s: draining %d generation(s)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", atomic_load(&srv.in_flight));
    // Stop accepting, let running generations finish for a while, then cancel the rest:
    // each client still gets a whole reply, ending with finish_reason "cancelled". A reply
    // counts as undelivered until its last byte has gone to the socket (its generations'
    // slots are free before that), so waiting for 0 waits for the deliveries too.
    gen_stop_admitting();
    struct timespec drain_t0;
    clock_gettime(CLOCK_MONOTONIC, &drain_t0);
    tuning_begin_stop(); // the trainer writes its checkpoint while generations finish
    int lfd = MHD_quiesce_daemon(d);
    if (lfd >= 0) close(lfd);
    wait_undelivered(srv.cfg.drain_timeout);
    atomic_store(&srv.shutting_down, 2);
    wait_undelivered(DELIVER_SECONDS);
    // libmicrohttpd must not be stopped with a connection suspended: every task is released
    // within a step of the cancellation, and its release resumes its connection.
    for (int i = 0; i < 500 && sched_pending() > 0; i++) usleep(2000);
    tuning_stop(srv.cfg.drain_timeout - elapsed_ms(&drain_t0) / 1000);
    http_stop(d);
    free_all();
    fprintf(stderr, SERVER_NAME ": stopped\n");
    return CLI_EXIT_OK;
}
