/* test_models.c — the model registry (server/models.c) in process, linked with core alone:
 * ids and defaults, reference counts, reloads that swap, keep or refuse a model, a
 * --models folder followed, and the hooks called once per model at the right moments. */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch.h"
#include "error.h"
#include "gpt.h"
#include "models.h"
#include "testutil.h"

#define TEXT "the quick brown fox jumps over the lazy dog. THE END!\n"

static const GptConfig GPT = {
    .layers = 2, .heads = 2, .embed = 8, .block = 6, .norm = GPT_LAYERNORM, .bias = 1};

// What the hooks saw. The loaded hook attaches a card of its own that the dropped hook
// frees, so ASan's leak check sees a model dropped without its hook: its text ("card
// <id>", first, so m->card reads as it), and the holders that say they are using it, so
// that a model dropped while one is counts even without ASan.
typedef struct {
    char text[MODEL_ID_MAX + 8];
    atomic_int holders;
} Card;
static atomic_int loads, drops, drops_held;
static atomic_int refuse; // 1: the loaded hook refuses the next model
static char dropped_id[MODEL_ID_MAX];
static const char *dropped_arch; // a static name (arch.h), readable after the model is gone
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;

// The counts as plain ints, for readable assertion messages.
static int loaded(void) {
    return atomic_load(&loads);
}
static int dropped(void) {
    return atomic_load(&drops);
}

static int hook_loaded(ServedModel *m, char *err) {
    if (atomic_exchange(&refuse, 0)) return err_set(err, "refused by the hook");
    Card *card = calloc(1, sizeof(*card));
    if (!card) return err_set(err, "out of memory");
    snprintf(card->text, sizeof card->text, "card %s", m->id);
    m->card = card->text;
    atomic_fetch_add(&loads, 1);
    return 0;
}

static void hook_dropped(ServedModel *m) {
    pthread_mutex_lock(&seen_mu);
    snprintf(dropped_id, sizeof dropped_id, "%s", m->id);
    dropped_arch = m->model.arch->name;
    pthread_mutex_unlock(&seen_mu);
    Card *card = (Card *)m->card;
    if (atomic_load(&card->holders)) atomic_fetch_add(&drops_held, 1);
    free(card);
    atomic_fetch_add(&drops, 1);
}

static CliList dirs, ids;
static ModelsConfig config(const char *models_dir) {
    return (ModelsConfig){.dirs = &dirs,
                          .ids = &ids,
                          .models_dir = models_dir,
                          .log_name = "test_models",
                          .hooks = {hook_loaded, hook_dropped}};
}

static void setup(void) {
    tu_dir_setup();
    dirs.n = ids.n = 0;
    atomic_store(&loads, 0);
    atomic_store(&drops, 0);
    atomic_store(&drops_held, 0);
    atomic_store(&refuse, 0);
    dropped_id[0] = '\0';
    dropped_arch = NULL;
}

static void teardown(void) {
    tu_dir_teardown();
}

// tu_dir/name, in a static ring so that a test can hold a few at once.
static const char *at(const char *name) {
    static char ring[8][4096];
    static int next;
    char *p = ring[next++ % 8];
    snprintf(p, sizeof ring[0], "%s/%s", tu_dir, name);
    return p;
}

static void make_lstm(const char *dir, uint64_t seed) {
    ck_assert_int_eq(tu_make_model_dir(dir, TEXT, 4, 6, 1, seed), 0);
}

// A new version of a served folder: made beside it and renamed over its files, so that
// each is a new file (a new inode) whatever the clock's granularity.
static void replace_with(const char *dir, const char *arch, const void *hyper, uint64_t seed) {
    const char *next = at("next");
    ck_assert_int_eq(tu_make_arch_dir(next, TEXT, arch, hyper, seed), 0);
    const char *files[] = {"vocab.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        char from[4096], to[4096];
        snprintf(from, sizeof from, "%s/%s", next, files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        ck_assert_int_eq(rename(from, to), 0);
    }
}

// A --model folder (copied: the CliList points at it as long as the registry runs).
static void add_model(const char *dir, const char *id) {
    static char store[CLI_LIST_MAX][4096];
    snprintf(store[dirs.n], sizeof store[0], "%s", dir);
    dirs.value[dirs.n] = store[dirs.n];
    dirs.n++;
    if (id) ids.value[ids.n++] = id;
}

// One report list as "a,b" (a failed entry by its id, null as "null").
static void list_text(const cJSON *report, const char *key, char *out, size_t cap) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(report, key);
    ck_assert_msg(cJSON_IsArray(a), "no %s list", key);
    out[0] = '\0';
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        const cJSON *id = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "id") : e;
        if (cJSON_IsObject(e))
            ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "error")));
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", len ? "," : "",
                 cJSON_IsString(id) ? id->valuestring : "null");
    }
}

// Reloads and checks the report: each list's ids, in order.
static void reload_is(const char *reloaded, const char *unchanged, const char *failed) {
    char *json = models_reload();
    ck_assert_ptr_nonnull(json);
    cJSON *r = cJSON_Parse(json);
    ck_assert_ptr_nonnull(r);
    const char *keys[] = {"reloaded", "unchanged", "failed"};
    const char *want[] = {reloaded, unchanged, failed};
    for (int k = 0; k < 3; k++) {
        char got[1024];
        list_text(r, keys[k], got, sizeof got);
        ck_assert_msg(strcmp(got, want[k]) == 0, "%s: [%s], not [%s] (%s)", keys[k], got, want[k],
                      json);
    }
    cJSON_Delete(r);
    free(json);
}

// A model's logits after feeding it the first chars of TEXT one step at a time, into out
// [V]: what a generation on it computes.
static void step_text(const Model *m, float *out) {
    char err[ERR_LEN];
    void *sc = m->arch->scratch_alloc(m, 1, err), *st = m->arch->state_alloc(m, err);
    ck_assert_ptr_nonnull(sc);
    ck_assert_ptr_nonnull(st);
    for (int t = 0; t < 5; t++) {
        int id = t % m->vocab_size;
        m->arch->step(m, sc, 1, &id, &st, out);
    }
    for (int v = 0; v < m->vocab_size; v++) ck_assert(isfinite(out[v]));
    m->arch->state_free(st);
    m->arch->scratch_free(sc);
}

static int refs(ServedModel *m) {
    return atomic_load(&m->refs);
}

// Ids, the default and references: every get is a reference until its put, and the list
// holds one of its own.
START_TEST(test_get_by_id) {
    make_lstm(at("one"), 1);
    make_lstm(at("second"), 2);
    add_model(at("one"), "first");
    add_model(at("second"), NULL); // named after its folder
    char err[ERR_LEN];
    ModelsConfig c = config(NULL);
    ck_assert_msg(models_start(&c, err) == 0, "%s", err);
    ck_assert_int_eq(models_count(), 2);
    ck_assert_int_eq(loaded(), 2);

    ServedModel *a = models_get("first"), *b = models_get("second");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(a->id, "first");
    ck_assert_str_eq(b->id, "second");
    ck_assert_str_eq(a->card, "card first"); // the hook's, carried by the model
    ck_assert_int_eq(refs(a), 2);
    ck_assert_ptr_eq(models_get(NULL), a); // the default is the first
    ck_assert_ptr_eq(models_get(""), a);
    ck_assert_int_eq(refs(a), 4);
    models_put(a);
    models_put(a);
    ck_assert_ptr_null(models_get("three"));
    ck_assert_ptr_null(models_get("Second"));

    ServedModel *all[MODELS_MAX];
    ck_assert_int_eq(models_all(all, MODELS_MAX), 2);
    ck_assert_ptr_eq(all[0], a);
    ck_assert_ptr_eq(all[1], b);
    ck_assert_int_eq(refs(b), 3);
    models_put(all[0]);
    models_put(all[1]);
    ck_assert_int_eq(models_all(all, 1), 1);
    models_put(all[0]);

    char text[64];
    models_ids_text(text, sizeof text);
    ck_assert_str_eq(text, "'first', 'second'");
    models_ids_text(text, 16); // room for one id and the ", ..." that says one is missing
    ck_assert_str_eq(text, "'first', ...");

    // Stopping lets go of the list's references: each model goes with its holder's last.
    models_stop();
    ck_assert_int_eq(models_count(), 0);
    ck_assert_int_eq(dropped(), 0);
    models_put(a);
    ck_assert_int_eq(dropped(), 1);
    ck_assert_str_eq(dropped_id, "first");
    models_put(b);
    ck_assert_int_eq(dropped(), 2);
    ck_assert_ptr_null(models_get(NULL));
}
END_TEST

// With one model, every name gives it (OpenAI clients send names of their own).
START_TEST(test_one_model_answers_any_name) {
    make_lstm(at("solo"), 1);
    add_model(at("solo"), NULL);
    char err[ERR_LEN];
    ModelsConfig c = config(NULL);
    ck_assert_msg(models_start(&c, err) == 0, "%s", err);
    ServedModel *m = models_get("gpt-3.5-turbo");
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->id, "solo");
    models_put(m);
    models_stop();
    ck_assert_int_eq(dropped(), 1);
}
END_TEST

static char long_id[MODEL_ID_MAX + 1]; // MODEL_ID_MAX bytes: one too many

// Configurations that do not start, with their status and a word of their message; a
// start that fails part way has let go of every model it loaded.
static const struct {
    const char *ids[3]; // per --model; NULL: named after the folder
    int nids;
    const char *dirs[3]; // under tu_dir; "ok1"/"ok2" hold models
    int ndirs;
    int refuse; // the loaded hook refuses the first model
    int rc;
    const char *says;
} BAD[] = {
    {{"a", "b"}, 2, {"ok1"}, 1, 0, -1, "2 --model-id for 1 --model"},
    {{"same", "same"}, 2, {"ok1", "ok2"}, 2, 0, -1, "two models with the id 'same'"},
    {{"\xff"}, 1, {"ok1"}, 1, 0, -2, "not UTF-8"},
    {{long_id}, 1, {"ok1"}, 1, 0, -2, "is 128 bytes, more than 127"},
    {{NULL, NULL}, 0, {"ok1", "missing"}, 2, 0, -1, "no model.safetensors and vocab.json"},
    {{NULL}, 0, {"ok1"}, 1, 1, -1, "refused by the hook"},
};

START_TEST(test_bad_configurations) {
    memset(long_id, 'x', MODEL_ID_MAX);
    make_lstm(at("ok1"), 1);
    make_lstm(at("ok2"), 2);
    for (int i = 0; i < BAD[_i].ndirs; i++) add_model(at(BAD[_i].dirs[i]), NULL);
    for (int i = 0; i < BAD[_i].nids; i++) ids.value[ids.n++] = BAD[_i].ids[i];
    atomic_store(&refuse, BAD[_i].refuse);
    char err[ERR_LEN];
    ModelsConfig c = config(NULL);
    ck_assert_int_eq(models_start(&c, err), BAD[_i].rc);
    ck_assert_msg(strstr(err, BAD[_i].says), "'%s' does not say '%s'", err, BAD[_i].says);
    ck_assert_int_eq(models_count(), 0);
    ck_assert_int_eq(dropped(), loaded());
}
END_TEST

// A reload that finds nothing changed keeps the very models served.
START_TEST(test_reload_unchanged) {
    make_lstm(at("m"), 1);
    add_model(at("m"), "m");
    char err[ERR_LEN];
    ModelsConfig c = config(NULL);
    ck_assert_msg(models_start(&c, err) == 0, "%s", err);
    ServedModel *before = models_get("m");
    reload_is("", "m", "");
    ServedModel *after = models_get("m");
    ck_assert_ptr_eq(after, before);
    ck_assert_int_eq(loaded(), 1);
    ck_assert_int_eq(refs(before), 3);
    models_put(before);
    models_put(after);
    models_stop();
    ck_assert_int_eq(dropped(), 1);
}
END_TEST

// The swap across architectures: an LSTM folder becomes a GPT one while a request holds
// the LSTM. The holder keeps the LSTM, which steps as it did; a new get has the GPT; the
// LSTM goes with the last reference to it, not before.
START_TEST(test_reload_swaps_lstm_for_gpt_while_held) {
    make_lstm(at("m"), 1);
    add_model(at("m"), "m");
    char err[ERR_LEN];
    ModelsConfig c = config(NULL);
    ck_assert_msg(models_start(&c, err) == 0, "%s", err);
    ServedModel *old = models_get("m"), *old2 = models_get(NULL);
    ck_assert_ptr_eq(old, old2);
    ck_assert_str_eq(old->model.arch->name, "lstm");
    int V = old->model.vocab_size;
    float *before = malloc(sizeof(float) * V), *after = malloc(sizeof(float) * V);
    step_text(&old->model, before);

    replace_with(at("m"), "gpt", &GPT, 7);
    reload_is("m", "", "");
    ck_assert_int_eq(loaded(), 2);
    ck_assert_int_eq(dropped(), 0);

    ServedModel *now = models_get("m");
    ck_assert_ptr_ne(now, old);
    ck_assert_str_eq(now->model.arch->name, "gpt");
    ck_assert_int_eq(arch_field(&now->model, "block"), GPT.block);
    ck_assert_str_eq(now->card, "card m");
    float *gpt = malloc(sizeof(float) * now->model.vocab_size);
    step_text(&now->model, gpt);

    // The holders' model is the LSTM still, whole: the same logits bit for bit.
    ck_assert_str_eq(old->model.arch->name, "lstm");
    ck_assert_int_eq(refs(old), 2); // the two holders; the list let go of its own
    step_text(&old->model, after);
    ck_assert_mem_eq(before, after, sizeof(float) * V);
    models_put(old);
    ck_assert_int_eq(dropped(), 0);
    step_text(&old2->model, after);
    models_put(old2);
    ck_assert_int_eq(dropped(), 1);
    ck_assert_str_eq(dropped_arch, "lstm");

    // And back: the GPT is held while the LSTM returns.
    replace_with(at("m"), "lstm", &(ModelConfig){.embed = 4, .hidden = 6, .layers = 1}, 1);
    reload_is("m", "", "");
    ServedModel *back = models_get("m");
    ck_assert_str_eq(back->model.arch->name, "lstm");
    step_text(&back->model, after);
    ck_assert_mem_eq(before, after, sizeof(float) * V); // the same weights as at first
    ck_assert_str_eq(now->model.arch->name, "gpt");
    models_put(now);
    ck_assert_int_eq(dropped(), 2);
    ck_assert_str_eq(dropped_arch, "gpt");
    models_put(back);
    models_stop();
    ck_assert_int_eq(dropped(), 3);
    free(before);
    free(after);
    free(gpt);
}
END_TEST

// A folder that no longer loads, or a model the hook refuses, leaves the old model
// serving; once the folder is right again, the next reload takes it.
START_TEST(test_failed_reload_keeps_the_old_model) {
    make_lstm(at("m"), 1);
    make_lstm(at("other"), 2);
    add_model(at("m"), "m");
    add_model(at("other"), "other");
    char err[ERR_LEN];
    ModelsConfig c = config(NULL);
    ck_assert_msg(models_start(&c, err) == 0, "%s", err);
    ServedModel *old = models_get("m");
    models_put(old);

    char *p = tu_write_file(at("m"), "model.safetensors", "not a model", 11);
    free(p);
    reload_is("", "other", "m");
    ck_assert_ptr_eq(models_get("m"), old);
    models_put(old);

    replace_with(at("m"), "gpt", &GPT, 3);
    atomic_store(&refuse, 1);
    reload_is("", "other", "m");
    ck_assert_ptr_eq(models_get("m"), old);
    models_put(old);
    ck_assert_int_eq(dropped(), 0);
    ck_assert_int_eq(models_count(), 2);

    reload_is("m", "other", "");
    ServedModel *now = models_get("m");
    ck_assert_str_eq(now->model.arch->name, "gpt");
    ck_assert_int_eq(dropped(), 1); // the list's was the last reference to old
    models_put(now);
    models_stop();
    ck_assert_int_eq(dropped(), 3);
}
END_TEST

// --models: subfolders by name; one removed is no longer served (its holder keeps it),
// one added is, and a folder left with none keeps serving what it had.
START_TEST(test_models_folder_followed) {
    const char *root = at("models");
    const char *names[] = {"c", "a", "b"};
    for (int i = 0; i < 3; i++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root, names[i]);
        make_lstm(dir, (uint64_t)i + 1);
    }
    char *note = tu_write_file(root, "README", "not a model", 11); // a file: skipped
    free(note);
    char err[ERR_LEN];
    ModelsConfig c = config(root);
    ck_assert_msg(models_start(&c, err) == 0, "%s", err);
    char text[64];
    models_ids_text(text, sizeof text);
    ck_assert_str_eq(text, "'a', 'b', 'c'");

    ServedModel *b = models_get("b");
    ck_assert_ptr_nonnull(b);
    tu_rmtree(at("models/b"));
    reload_is("", "a,c", "");
    ck_assert_int_eq(models_count(), 2);
    ck_assert_ptr_null(models_get("b"));
    ck_assert_int_eq(dropped(), 0);
    ck_assert_str_eq(b->id, "b");
    float *out = malloc(sizeof(float) * b->model.vocab_size);
    step_text(&b->model, out);
    free(out);
    models_put(b);
    ck_assert_int_eq(dropped(), 1);
    ck_assert_str_eq(dropped_id, "b");

    ck_assert_int_eq(tu_make_arch_dir(at("models/d"), TEXT, "gpt", &GPT, 4), 0);
    reload_is("d", "a,c", "");
    ServedModel *d = models_get("d");
    ck_assert_str_eq(d->model.arch->name, "gpt");
    models_put(d);

    tu_rmtree(at("models/a"));
    tu_rmtree(at("models/c"));
    tu_rmtree(at("models/d"));
    reload_is("", "", "");
    ck_assert_int_eq(models_count(), 3);
    ck_assert_int_eq(dropped(), 1);
    models_stop();
    ck_assert_int_eq(dropped(), 4);
}
END_TEST

// Requests take and drop references on other threads while reloads swap the model: each
// holder sees one whole model, none is dropped while held (ASan also sees any use after
// the last put), and every model loaded is dropped exactly once.
#define HOLDERS 3
static atomic_int stop_holders;
typedef struct {
    long good, bad;
} Seen;
static void *hold_loop(void *arg) {
    Seen *seen = arg;
    while (!atomic_load(&stop_holders)) {
        ServedModel *m = models_get(NULL);
        if (!m) {
            seen->bad++;
            continue;
        }
        Card *card = (Card *)m->card;
        atomic_fetch_add(&card->holders, 1);
        // Read what a request reads: its id, its architecture's table, its card.
        const char *arch = m->model.arch->name;
        int whole = strcmp(m->id, "m") == 0 && strcmp(card->text, "card m") == 0 &&
                    (strcmp(arch, "lstm") == 0 || strcmp(arch, "gpt") == 0) &&
                    atomic_load(&m->refs) >= 1;
        if (whole)
            seen->good++;
        else
            seen->bad++;
        atomic_fetch_sub(&card->holders, 1);
        models_put(m);
    }
    return NULL;
}

START_TEST(test_references_across_threads) {
    make_lstm(at("m"), 1);
    add_model(at("m"), "m");
    char err[ERR_LEN];
    ModelsConfig c = config(NULL);
    ck_assert_msg(models_start(&c, err) == 0, "%s", err);
    pthread_t t[HOLDERS];
    Seen seen[HOLDERS] = {0};
    atomic_store(&stop_holders, 0);
    for (int i = 0; i < HOLDERS; i++) pthread_create(&t[i], NULL, hold_loop, &seen[i]);
    const int swaps = 12;
    for (int k = 0; k < swaps; k++) {
        if (k % 2)
            replace_with(at("m"), "lstm", &(ModelConfig){.embed = 4, .hidden = 6, .layers = 1},
                         (uint64_t)k);
        else
            replace_with(at("m"), "gpt", &GPT, (uint64_t)k);
        reload_is("m", "", "");
    }
    atomic_store(&stop_holders, 1);
    for (int i = 0; i < HOLDERS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_gt(seen[i].good, 0);
        ck_assert_int_eq(seen[i].bad, 0);
    }
    ck_assert_int_eq(atomic_load(&drops_held), 0);
    ck_assert_int_eq(loaded(), swaps + 1);
    ck_assert_int_eq(dropped(), swaps);
    ServedModel *m = models_get("m");
    ck_assert_int_eq(refs(m), 2);
    models_put(m);
    models_stop();
    ck_assert_int_eq(dropped(), swaps + 1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("models");
    TCase *tc = tcase_create("registry");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_get_by_id);
    tcase_add_test(tc, test_one_model_answers_any_name);
    tcase_add_loop_test(tc, test_bad_configurations, 0, (int)(sizeof BAD / sizeof BAD[0]));
    tcase_add_test(tc, test_reload_unchanged);
    tcase_add_test(tc, test_reload_swaps_lstm_for_gpt_while_held);
    tcase_add_test(tc, test_failed_reload_keeps_the_old_model);
    tcase_add_test(tc, test_models_folder_followed);
    tcase_add_test(tc, test_references_across_threads);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
