/*
 * server.h — the state every part of charlm-server shares: its configuration and
 * counters (the models are models.h's). Each part has its own header; includes run one way,
 * main -> routes -> handlers -> http, api, sched, metrics -> core:
 *
 *   main.c       flag rows (core/cli.h), startup, signals, draining
 *   models.h     the models served, by id: reference counts, reload (core only; the card
 *                and metrics attach through its hooks, which main.c wires)
 *   routes.h     the route table: paths, methods, handlers, metric labels, keys needed
 *   auth.h       API keys: loading them and checking a request's Authorization
 *   headers.h    the header section's framing rules; fields.h feeds them true values
 *   hostcheck.h  DNS rebinding protection: the Host headers a loopback server answers
 *   http.h       the libmicrohttpd daemon, request bodies, responses, access log
 *   conns.h      open connections: the idle timeout, giving way at --max-connections
 *   api.h        JSON request parsing and validation (/generate, /v1/completions, chat)
 *   gen.h        the generation routes: parse, admit, start, deliver
 *   admit.h      admission: --max-concurrent, --max-waiting-bytes, the drain's refusal
 *   job.h        an admitted request's life: its generations, release, end
 *   watch.h      the thread that notices clients leaving parked connections
 *   deliver.h    a job's JSON reply or SSE stream on its connection
 *   reply.h      a done request's JSON reply, encoded a bounded piece at a time
 *   scheduler.h  the worker threads that step generations in batches (sched.c)
 *   info.h       /health, /model, /v1/models, /tokenize, /detokenize
 *   card.h       a model's card (GET /model), built once when it is loaded
 *   metrics.h    Prometheus counters and /metrics
 *   static.h     the web page and its assets
 *   files_api.h  /v1/files: OpenAI's Files API, with --training-dir
 *   multipart.h  multipart/form-data bodies parsed as they arrive
 *   textcheck.h  whether an upload is a training text, checked as it arrives
 *   filestore.h  the uploaded files in the training dir, written as they arrive
 *   tuning_api.h /v1/fine_tuning/jobs: OpenAI's fine-tuning API, with --training-dir
 *   tunereq.h    a job request's body, parsed and checked
 *   tuning.h     the fine-tuning jobs, as the HTTP thread asks for them; inside it:
 *   tunejob.h      a job in memory and on disk, its events; the jobs' one lock
 *   tunerun.h      the runner thread: validate, run one child charlm-train, follow, reload
 *   tunestream.h   a job's events as Server-Sent Events
 *   trainproc.h  the child process of a job's run
 */
#ifndef CHARLM_SERVER_H
#define CHARLM_SERVER_H

#include <stdatomic.h>
#include <time.h>

#include "artefacts.h"
#include "cli.h"

#define SERVER_NAME "charlm-server"

/* Filled by main.c from its flag rows, which state each setting's flag, variable, range
 * and default. */
typedef struct {
    CliList model_dirs;     // --model: each one folder
    const char *models_dir; // --models: a folder of model folders
    const char *host;
    int port;
    int threads;              // scheduler workers
    int prefill_chunk;        // prompt chars per prefill chunk (1: fed like generated chars)
    int max_tokens;           // per request
    int max_prompt;           // chars
    long max_body;            // bytes
    int max_concurrent;       // generations in flight
    long max_waiting_bytes;   // held by done replies before new generations are refused
    int max_conns;            // open HTTP connections
    int max_conns_per_ip;     // from one client address; 0: no limit
    int idle_timeout;         // seconds a connection may make no progress (conns.h)
    int drain_timeout;        // seconds SIGTERM lets generations finish
    CliList cors_origins;     // each value one origin or several, separated by commas or spaces
    CliList allowed_hosts;    // the same for --allowed-host's names (hostcheck.h)
    const char *api_key;      // read by auth_init, never printed
    const char *api_key_file; // one key a line
    CliList model_ids;        // --model-id: the k-th names the k-th --model
    const char *chat_template_file;
    const char *training_dir; // --training-dir: uploads (and later jobs) live here; NULL: off
    long max_upload;          // bytes of one uploaded file
    int training_threads;     // each fine-tuning job's trainer --threads
    const char *trainer;      // charlm-train's path, for the jobs
    int max_uploads;          // uploads in progress at once
    int version;              // --version: print it and exit
    // Set by main from chat_template_file; NULL: the built-in template (chat.h).
    const struct ChatTemplate *chat_template;
} ServerConfig;

typedef struct {
    ServerConfig cfg;
    char *static_dir; // resolved page folder, or NULL when none was found
    time_t started;
    atomic_int in_flight;            // generations admitted and not yet done: --max-concurrent's
    atomic_int undelivered;          // replies admitted and not yet delivered (or abandoned)
    atomic_int replies_waiting;      // of those, replies whose generations are all done
    atomic_long reply_bytes_waiting; // the memory those hold: generations and buffers
    atomic_int shutting_down;        // 1: refuse new generations; 2: cancel running ones
    atomic_long conns_timed_out, conns_evicted; // connections shut down by conns.c
} Server;

extern Server srv;

#endif
