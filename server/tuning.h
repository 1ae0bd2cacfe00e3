/*
 * tuning.h — fine-tuning jobs, with --training-dir: OpenAI's job and event objects, run
 * one at a time by charlm-train as a child process (trainproc.h), their models served as
 * they improve.
 *
 * On disk, under the training dir:
 *   jobs/<job id>/job.json       the job object and what its run needs, rewritten atomically
 *                                at every change of state
 *   jobs/<job id>/events.jsonl   its events, one a line, oldest first (appended)
 *   jobs/<job id>/train.txt      the training text (the validation file's after it), made
 *                                from the uploads when the job is validated
 *   jobs/<job id>/trainer.log    the trainer's stderr; trainer.out its summary line
 *   models/<fine_tuned_model>/   the trainer's --out: served like a --models subfolder from
 *                                its first published (best) model on
 *
 * Life of a job: validating_files (the runner reads the uploads and writes train.txt) ->
 * queued -> running (the child trains; each log row of its becomes an event; a new best
 * model is reloaded into the registry, so nothing half-written is ever served) ->
 * succeeded | failed | cancelled. One runner thread does all of it; the HTTP thread only
 * reads jobs and asks for new ones and cancels, under one lock.
 *
 * On SIGTERM the child is stopped (it writes its checkpoint) and the job stays running on
 * disk; a server started again on the same dir resumes it with --resume, and one killed
 * outright (SIGKILL) resumes it from the last periodic checkpoint.
 */
#ifndef CHARLM_TUNING_H
#define CHARLM_TUNING_H

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "tunereq.h"

typedef struct {
    const char *dir;     // --training-dir
    const char *trainer; // charlm-train's path
    int threads;         // --training-threads
} TuningConfig;

/* Makes jobs/ and models/ in the dir, reads the jobs there and starts the runner, which
 * resumes any job a previous server left unfinished. */
int tuning_start(const TuningConfig *cfg, char *err);
/* The drain: asks a running child to stop with its checkpoint and ends every event
 * stream; tuning_stop then waits up to `seconds` for the child (killing it after) and
 * stops the runner. */
void tuning_begin_stop(void);
void tuning_stop(double seconds);

/* The training dir's models/ folder (for the registry), or NULL without --training-dir. */
const char *tuning_models_dir(void);

/* A new job from a parsed request whose model names `arch` ("lstm" or "gpt") and, to go
 * on from a served model's weights, init_dir (its folder; NULL: from scratch) and
 * init_seq (its context, the GPT's block; 0: the default). base names the model in the
 * fine-tuned id (folder-safe). Returns the job object (the caller's to free), or NULL
 * with err and *status (429: no room for its model; 503, 507) set. */
cJSON *tuning_create(const TuneRequest *r, const char *arch, const char *init_dir, const char *base,
                     int init_seq, char *err, int *status);
/* The job object of id, or NULL (404). */
cJSON *tuning_get(const char *id);
/* {"object": "list", "data": [jobs newest first], "has_more"}: `limit` of them after the
 * job `after` (NULL: from the newest). */
cJSON *tuning_list(const char *after, int limit);
/* Cancels id: the job object, or NULL with *status 404 (no such job) or 400 (finished). */
cJSON *tuning_cancel(const char *id, int *status, char *err);
/* Events, newest first, as tuning_list pages them; NULL when there is no such job. */
cJSON *tuning_events(const char *id, const char *after, int limit);
/* The job's checkpoints list, or NULL when there is no such job. */
cJSON *tuning_checkpoints(const char *id);
/* Queues a text/event-stream response of the job's events on conn (every event so far,
 * oldest first, then each new one; "data: [DONE]" once the job has ended). Returns
 * MHD_NO when the job does not exist or memory ran out (*status 404 or 503 then). */
struct MHD_Response *tuning_event_stream(const char *id, struct MHD_Connection *conn, int *status);

/* DELETE /v1/models/{id}: removes a fine-tuned model (a folder of models/ whose job has
 * ended) and drops it from the registry. 0, or -1 with err and *status (404: no such
 * folder; 400: its job still runs). */
int tuning_delete_model(const char *id, int *status, char *err);

#endif
