/*
 * sched.c — the batching scheduler: a few worker threads, each advancing all of its
 * generations with one infer_step per step.
 *
 * One step of a small LSTM is a handful of products against the same weights; stepping
 * a worker's streams together reads those weights once per four streams instead of once
 * per stream. The HTTP threads do not compute and never wait here: they submit a task,
 * poll it, and when there is nothing yet their connection is parked until the worker
 * wakes it (Waker).
 * infer_step's rows do not depend on how many streams share a step, and each generation
 * draws from its own generator, so a request's text is the same alone or in any batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arch.h"
#include "error.h"
#include "models.h"
#include "scheduler.h"
#include "server.h"

// Streams per infer_step. Beyond this a worker takes its streams in turns.
#define MAX_BATCH 64

typedef struct Worker {
    pthread_t thread;
    pthread_mutex_t mu; // guards the task list and every field the tasks share
    pthread_cond_t work;
    Task *head, *tail;
    atomic_int ntasks; // written under mu, read without it to pick a worker
    int stop, thread_started;
    int cap_vocab;            // the largest vocabulary the logits below fit
    const Arch *step_arch;    // whose scratch `scratch` is, or NULL
    void *scratch;            // the architecture's, for steps of MAX_BATCH streams
    const Arch *prefill_arch; // whose scratch `prefill` is, or NULL
    void *prefill;            // the architecture's, for prefill_chunk chars
    float *prefill_logits;    // [prefill_chunk, V]
    float *logits;            // [MAX_BATCH, V]
    Task **batch;             // [MAX_BATCH]
    int *ids;                 // [MAX_BATCH]
    void **states;            // [MAX_BATCH] the generations' states
} Worker;

static Worker *workers;
static int nworkers;
static atomic_int pending; // submitted, not yet released

// The owner is parked: let it go on (lock held).
static void wake(Task *t) {
    Task *g = t->group;
    if (!g->parked) return;
    g->parked = 0;
    g->waker->wake(g->waker_arg);
}

// Removes t from w's list (lock held) and hands it back to its owner.
static void release(Worker *w, Task *t) {
    Task **p = &w->head, *prev = NULL;
    while (*p && *p != t) prev = *p, p = &(*p)->next;
    if (*p) {
        *p = t->next;
        if (w->tail == t) w->tail = prev;
        w->ntasks--;
    }
    t->next = NULL;
    t->released = 1;
    atomic_fetch_sub(&pending, 1);
    pthread_cond_signal(&t->cv);
    Task *g = t->group;
    if (--g->group_left == 0 && g->waker->released) g->waker->released(g->waker_arg);
    wake(t);
}

// Hands one step's logits to t's generation (lock held); last: the step's final logits
// for t, after which its owner hears of new text or the release.
static void advance(Worker *w, Task *t, const float *logits, int last) {
    generation_advance(t->gen, logits);
    if (!last) return;
    if (t->gen->done) {
        release(w, t);
    } else if (t->wants_text && t->gen->emitted > t->woken_text) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double now = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
        if (t->woken_text == 0 || now - t->last_wake_ms >= SCHED_STREAM_WAKE_MS) {
            t->last_wake_ms = now;
            t->woken_text = t->gen->emitted;
            wake(t);
        }
    }
}

// Ends the tasks of a step that could not run (lock held): out of memory for a model's
// buffers. Their generations end with the finish reason of an error, not as cancelled.
static void fail_step(Worker *w, int n, Task *pre, const char *err) {
    fprintf(stderr, SERVER_NAME ": worker: %s\n", err);
    for (int i = 0; i < n; i++) {
        generation_fail(w->batch[i]->gen);
        release(w, w->batch[i]);
    }
    if (pre) {
        generation_fail(pre->gen);
        release(w, pre);
    }
}

// Sizes the worker's buffers to serve model too (lock held): its step scratch, or with
// for_prefill its prefill scratch, and the logits. A scratch that serves it is kept, so
// the buffers grow to the largest model loaded.
static int worker_fit(Worker *w, const Model *model, int for_prefill, char *err) {
    const Arch *a = model->arch;
    const Arch **have = for_prefill ? &w->prefill_arch : &w->step_arch;
    void **scratch = for_prefill ? &w->prefill : &w->scratch;
    int fits = *have == a &&
               (for_prefill ? a->prefill_fits(model, *scratch) : a->scratch_fits(model, *scratch));
    if (!fits) {
        if (*have) (for_prefill ? (*have)->prefill_free : (*have)->scratch_free)(*scratch);
        *have = NULL;
        *scratch = for_prefill ? a->prefill_alloc(model, srv.cfg.prefill_chunk, err)
                               : a->scratch_alloc(model, MAX_BATCH, err);
        if (!*scratch) return -1;
        *have = a;
    }
    int V = model->vocab_size;
    if (V > w->cap_vocab) {
        free(w->logits);
        free(w->prefill_logits);
        w->cap_vocab = 0;
        w->logits = malloc((size_t)MAX_BATCH * V * sizeof(float));
        w->prefill_logits = malloc((size_t)srv.cfg.prefill_chunk * V * sizeof(float));
        if (!w->logits || !w->prefill_logits) return err_set(err, "out of memory");
        w->cap_vocab = V;
    }
    return 0;
}

// Moves the tasks of this step to the tail (lock held), so that those it left out (past
// MAX_BATCH, or of another model) come first at the next one.
static void rotate(Worker *w, int n) {
    for (int i = 0; i < n; i++) {
        Task *t = w->batch[i], **p = &w->head;
        if (!t->next) continue; // already last
        while (*p != t) p = &(*p)->next;
        *p = t->next;
        t->next = NULL;
        w->tail->next = t;
        w->tail = t;
    }
}

/* The context rule for a full stream: its kept chars fed again, a prefill in chunks,
 * before the step that feeds it one more. Worker's own data only: no lock needed. */
static int refeed(Worker *w, Generation *g, char *err) {
    if (worker_fit(w, g->model, 1, err) != 0) return -1;
    int n, chunk = srv.cfg.prefill_chunk;
    const int *ids = generation_shift(g, &n);
    for (int done = 0; done < n; done += chunk) {
        int c = n - done < chunk ? n - done : chunk;
        g->model->arch->prefill(g->model, w->prefill, c, ids + done, g->state, NULL, 0);
    }
    return 0;
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop) pthread_cond_wait(&w->work, &w->mu);
        if (w->stop && !w->head) break;

        // Gather the batch: cancelled tasks leave; the first MAX_BATCH others of the first
        // one's model step together (a step runs one model's weights), except those with a
        // long prompt to prefill: the first of them gets the next chunk.
        int n = 0, skipped = 0, cancel_all = atomic_load(&srv.shutting_down) >= 2 || w->stop;
        int chunk = srv.cfg.prefill_chunk;
        const Model *model = NULL;
        Task *pre = NULL;
        for (Task *t = w->head, *next; t; t = next) {
            next = t->next;
            if (atomic_load(&t->cancel) || cancel_all) {
                generation_cancel(t->gen);
                release(w, t);
                continue;
            }
            // A prompt of at least a chunk is fed as a sequence; a shorter one joins the
            // batch a char per step, which under load costs less than a chunk of its own.
            if (chunk > 1 && t->gen->n_prompt >= chunk && generation_prompt_left(t->gen) > 1) {
                if (!pre) pre = t;
                continue;
            }
            if (!model) model = t->gen->model;
            if (n == MAX_BATCH || t->gen->model != model) {
                skipped = 1;
                continue;
            }
            w->batch[n] = t;
            w->ids[n] = generation_input(t->gen);
            w->states[n] = t->gen->state;
            n++;
        }
        if (n == 0 && !pre) continue;
        char err[ERR_LEN];
        if ((model && worker_fit(w, model, 0, err)) ||
            (pre && worker_fit(w, pre->gen->model, 1, err))) {
            // Out of memory for a larger model's buffers: its requests end.
            fail_step(w, n, pre, err);
            continue;
        }
        if (skipped) rotate(w, n);
        // A prefill chunk: the prompt's logits are read only where the prompt is scored,
        // and at its last char, whose logits draw the first generated one.
        // A chunk goes no further than the context rule allows (generation.h).
        int T = 0, nl = 0;
        if (pre) {
            const Generation *g = pre->gen;
            int left = generation_prompt_left(g), room = generation_room(g);
            if (room == 0)
                room = g->context - arch_context_keep(g->context); // after the shift below
            T = left < chunk ? left : chunk;
            if (T > room) T = room;
            nl = g->params.logprobs && g->params.score_prompt ? T : T == left ? 1 : 0;
        }
        pthread_mutex_unlock(&w->mu);
        // The states are only ever touched by this worker: no lock while computing. The
        // models stay loaded while their generations hold them (models.h).
        int failed = 0;
        for (int i = 0; i < n && !failed; i++)
            if (generation_room(w->batch[i]->gen) == 0) failed = refeed(w, w->batch[i]->gen, err);
        if (!failed && n > 0) model->arch->step(model, w->scratch, n, w->ids, w->states, w->logits);
        if (!failed && pre && generation_room(pre->gen) == 0) failed = refeed(w, pre->gen, err);
        if (!failed && pre && worker_fit(w, pre->gen->model, 1, err) == 0)
            pre->gen->model->arch->prefill(pre->gen->model, w->prefill, T,
                                           pre->gen->prompt_ids + pre->gen->prompt_pos,
                                           pre->gen->state, w->prefill_logits, nl);
        else if (pre)
            failed = 1;
        pthread_mutex_lock(&w->mu);
        if (failed) {
            fail_step(w, n, pre, err);
            continue;
        }
        int V = model ? model->vocab_size : 0;
        for (int i = 0; i < n; i++) advance(w, w->batch[i], w->logits + (size_t)i * V, 1);
        int Vp = pre ? pre->gen->model->vocab_size : 0;
        for (int i = 0; i < T; i++)
            advance(w, pre, i >= T - nl ? w->prefill_logits + (size_t)(i - (T - nl)) * Vp : NULL,
                    i == T - 1);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int sched_start(int n, char *err) {
    workers = calloc((size_t)n, sizeof(*workers));
    if (!workers) return err_set(err, "out of memory for %d workers", n);
    // Buffers for the largest model loaded; a larger one loaded later grows them.
    ServedModel *all[MODELS_MAX];
    int nm = models_all(all, MODELS_MAX);
    int failed = 0;
    for (int i = 0; i < n && !failed; i++) {
        Worker *w = &workers[i];
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->work, NULL);
        nworkers = i + 1;
        w->batch = malloc(MAX_BATCH * sizeof(*w->batch));
        w->ids = malloc(MAX_BATCH * sizeof(*w->ids));
        w->states = malloc(MAX_BATCH * sizeof(*w->states));
        failed = !w->batch || !w->ids || !w->states;
        for (int j = 0; j < nm && !failed; j++)
            failed = worker_fit(w, &all[j]->model, 0, err) || worker_fit(w, &all[j]->model, 1, err);
    }
    for (int i = 0; i < nm; i++) models_put(all[i]);
    if (failed) {
        sched_stop();
        return err_set(err, "out of memory for the scheduler");
    }
    for (int i = 0; i < n; i++) {
        Worker *w = &workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            sched_stop();
            return err_set(err, "cannot start worker thread %d", i);
        }
        w->thread_started = 1;
    }
    return 0;
}

void sched_stop(void) {
    for (int i = 0; i < nworkers; i++) {
        Worker *w = &workers[i];
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_signal(&w->work);
        pthread_mutex_unlock(&w->mu);
    }
    for (int i = 0; i < nworkers; i++) {
        Worker *w = &workers[i];
        if (w->thread_started) pthread_join(w->thread, NULL);
        if (w->step_arch) w->step_arch->scratch_free(w->scratch);
        if (w->prefill_arch) w->prefill_arch->prefill_free(w->prefill);
        free(w->prefill_logits);
        free(w->logits);
        free(w->batch);
        free(w->ids);
        free(w->states);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->work);
    }
    free(workers);
    workers = NULL;
    nworkers = 0;
}

void sched_submit(Task *tasks, Generation *const *gens, int k, int wants_text, const Waker *waker,
                  void *arg) {
    // The least loaded worker: infer_step's cost grows with its rows (it reads the
    // weights once per four rows), so spreading requests over the cores beats filling one
    // batch. (A stale count only makes the balance a little off.) A group stays together.
    Worker *w = &workers[0];
    for (int i = 1; i < nworkers; i++)
        if (atomic_load(&workers[i].ntasks) < atomic_load(&w->ntasks)) w = &workers[i];
    for (int i = 0; i < k; i++) {
        Task *t = &tasks[i];
        memset(t, 0, sizeof(*t));
        t->gen = gens[i];
        t->wants_text = wants_text;
        t->waker = waker;
        t->waker_arg = arg;
        t->group = tasks;
        t->worker = w;
        pthread_cond_init(&t->cv, NULL);
    }
    tasks->group_left = k;
    atomic_fetch_add(&pending, k);
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < k; i++) {
        if (w->tail)
            w->tail->next = &tasks[i];
        else
            w->head = &tasks[i];
        w->tail = &tasks[i];
    }
    w->ntasks += k;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
}

int sched_poll(Task *tasks, int k, int (*take)(void *ctx), void *ctx) {
    Worker *w = tasks->worker;
    pthread_mutex_lock(&w->mu);
    int released = 1;
    for (int i = 0; i < k && released; i++) released = tasks[i].released;
    int took = take ? take(ctx) : 0;
    int rc = released ? 1 : took ? 0 : -1;
    if (rc < 0) {
        tasks->parked = 1;
        tasks->waker->park(tasks->waker_arg);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void sched_cancel_async(Task *t) {
    atomic_store(&t->cancel, 1);
    // The worker has this task on its list, so it is not asleep: it sees the flag at its
    // next step.
}

void sched_cancel(Task *t) {
    Worker *w = t->worker;
    pthread_mutex_lock(&w->mu);
    atomic_store(&t->cancel, 1);
    pthread_cond_signal(&w->work);
    while (!t->released) pthread_cond_wait(&t->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

void sched_task_destroy(Task *t) {
    if (t->worker) pthread_cond_destroy(&t->cv);
    t->worker = NULL;
}

int sched_pending(void) {
    return atomic_load(&pending);
}
