/*
 * models.h — the models a server serves, by id: loaded at startup from --model and
 * --models folders, reference counted, and reloaded in place without dropping a request.
 *
 * A request takes a reference to the model it names (models_get) and drops it when its
 * last generation is done (models_put). A reload loads and checks a changed folder
 * completely first, then swaps the new model in under the registry's lock: requests that
 * hold the old one finish on it, and it is freed when the last of them lets go. A folder
 * that fails to load leaves the model that was there serving.
 *
 * The registry depends on core alone: what the rest of the server keeps for a model (its
 * card, its id's metrics series) it attaches through the hooks main.c passes to
 * models_start, so that a unit suite links models.c without the HTTP layer.
 */
#ifndef CHARLM_MODELS_H
#define CHARLM_MODELS_H

#include <stdatomic.h>
#include <sys/types.h>
#include <time.h>

#include "artefacts.h"
#include "cli.h"

// Models one server serves at once; an id's bytes, its NUL included: ids are at most
// MODEL_ID_MAX - 1 bytes of UTF-8, and longer ones are refused rather than cut.
#define MODELS_MAX   16
#define MODEL_ID_MAX 128

struct MetricsModel;

// What a folder's files were when they were read: a change of any is a new model.
typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} FileStamp;

typedef struct {
    char id[MODEL_ID_MAX];
    char *dir;
    Model model;
    Vocab vocab;
    ModelInfo info;
    time_t created; // model.safetensors' modification time: OpenAI's `created`
    // Set by the loaded hook and released by the dropped one; the registry only carries them.
    char *card;                        // GET /model body
    struct MetricsModel *metrics_slot; // this id's counters (metrics.h)
    FileStamp stamp[2];                // model.safetensors, vocab.json
    atomic_int refs;                   // the registry's one while listed, and one per holder
} ServedModel;

/* What the rest of the server does with a model the registry loads. loaded is called once
 * a folder has loaded and checked, before the model is served (at startup or by a
 * reload); nonzero with err set refuses it as a broken folder is refused, and it must then
 * leave nothing to release. dropped is called when the last reference to a model that
 * loaded accepted goes, in whichever thread lets go, before its weights are freed. Either
 * may be NULL. */
typedef struct {
    int (*loaded)(ServedModel *m, char *err);
    void (*dropped)(ServedModel *m);
} ModelsHooks;

/* What to serve, read again by every reload: the lists and strings must outlive the
 * registry. */
typedef struct {
    const CliList *dirs;    // --model: one folder each
    const CliList *ids;     // --model-id: the k-th names the k-th folder, the rest their folder's
    const char *models_dir; // --models: every subfolder holding a model, by name; or NULL
    const char *jobs_dir;   // the fine-tuning jobs' models, the same way (may be missing); or NULL
    const char *log_name;   // every log line starts "<log_name>: "
    ModelsHooks hooks;
} ModelsConfig;

/* Loads every folder cfg names (kept for models_reload). Errors name the folder; -2 for
 * an id that is no id (over MODEL_ID_MAX - 1 bytes, or not UTF-8), -1 for the rest. Ids and
 * paths in err, as in every log line of this module, have their control characters
 * escaped (utf8_escape). */
int models_start(const ModelsConfig *cfg, char *err);
/* Logs one line per model loaded: its folder, size and id. */
void models_log(void);
void models_stop(void);
int models_count(void);
/* The model a request's `model` field names, NULL or "" for the default (the first
 * loaded). With one model loaded every name gives it, as OpenAI clients send names of
 * their own. NULL when there is no such model. The caller holds a reference: models_put. */
ServedModel *models_get(const char *id);
void models_put(ServedModel *m);
/* References to every model, default first; returns how many (at most cap). */
int models_all(ServedModel **out, int cap);
/* The ids, in order, quoted and separated by ", " for a message: as many whole ones as
 * fit in cap, then ", ..." when some did not. */
void models_ids_text(char *buf, size_t cap);
/* Re-reads every folder; logs one line per model that changed or failed (a folder whose
 * name is no id is one that failed; the others are served). Returns the
 * report as JSON text ({"reloaded", "unchanged", "failed"}), or NULL when out of memory.
 * Reloads run one at a time. */
char *models_reload(void);

#endif
