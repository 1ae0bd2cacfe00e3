/*
 * tunejob.h — a fine-tuning job as the server keeps it: its job object (what clients
 * see), its run's settings, its events and its checkpoints, in memory and in
 * <training dir>/jobs/<id>/ (job.json rewritten atomically at every change, events.jsonl
 * appended); the list of jobs, and the one lock that covers them and their event streams.
 * Private to the fine-tuning module: tuning.c (what the HTTP thread asks), tunerun.c (the
 * runner thread), tunestream.c (the SSE streams). The rest of the server sees tuning.h.
 */
#ifndef CHARLM_TUNEJOB_H
#define CHARLM_TUNEJOB_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <sys/types.h>
#include <time.h>

// Jobs one training dir keeps: each is a few small files and, finished, a served model.
#define TUNEJOB_MAX 256

typedef struct {
    char id[40];
    cJSON *obj;           // the job object clients see
    cJSON *run;           // what the runner needs: paths, sizes, the trainer's flags
    cJSON *checkpoints;   // [checkpoint objects], oldest first
    char **events;        // [nevents] printed event objects, oldest first
    int nevents, cap;     // of events
    int ended;            // its last event (a final state) is appended
    int cancel;           // cancel asked while its child runs
    long last_step;       // the last log row turned into an event
    ino_t log_ino;        // the trainer's log as last read: which file, and
    size_t log_at;        // how much of it (whole rows)
    double best_val;      // the best validation loss among those rows
    struct timespec seen; // model.safetensors' mtime when last reloaded
} TuneJob;

// Everything below is used with tunejob_mu held, but for tunejob_open (before any thread).
extern pthread_mutex_t tunejob_mu;
extern TuneJob *tunejob_list[TUNEJOB_MAX]; // oldest first
extern int tunejob_count;
/* Called after every event appended (the streams' wake-up); NULL: none. */
extern void (*tunejob_on_event)(const TuneJob *j);

/* Makes <dir>/jobs and <dir>/models and reads the jobs a previous server left, oldest
 * first (a broken job.json is logged and left out). */
int tunejob_open(const char *dir, char *err);
/* <dir>/models, where the jobs' models live. */
const char *tunejob_models_dir(void);
/* Makes j's folder and lists it; 0, or -1 with err. */
int tunejob_add(TuneJob *j, char *err);
TuneJob *tunejob_find(const char *id);
void tunejob_free(TuneJob *j);

/* One line on stderr, "charlm-server: fine-tuning: ...", control bytes escaped. */
void tunejob_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* n random lowercase hex digits and a NUL. */
void tunejob_hex(char *out, int n);

const char *tunejob_status(const TuneJob *j);
int tunejob_is_final(const char *status); // succeeded, failed or cancelled
/* A member of j's run: a string (NULL when absent) or a number (0 when absent). */
const char *tunejob_str(const TuneJob *j, const char *name);
double tunejob_num(const TuneJob *j, const char *name);
/* Sets o's member name to v (replacing one there); a NULL v changes nothing. */
void tunejob_set(cJSON *o, const char *name, cJSON *v);
void tunejob_set_num(cJSON *o, const char *name, double v);
void tunejob_set_str(cJSON *o, const char *name, const char *v); // NULL: JSON null
/* jobs/<id>/name, and models/<model_name>/name (name NULL: the folder); malloc'd. */
char *tunejob_path(const TuneJob *j, const char *name);
char *tunejob_out_path(const TuneJob *j, const char *name);

/* Writes job.json (aside, then renamed); a failure is logged. */
void tunejob_save(const TuneJob *j);
/* Appends an event (memory and events.jsonl); data is taken over (NULL: {}). */
void tunejob_event(TuneJob *j, const char *level, const char *type, const char *message,
                   cJSON *data);
/* Moves j to status with its event; a final one sets finished_at and ends j's streams. */
void tunejob_status_set(TuneJob *j, const char *status, const char *message);
/* status_set "failed" with error {code, message}. */
void tunejob_fail(TuneJob *j, const char *code, const char *message);

#endif
