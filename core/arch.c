/* arch.c — the architectures by name: see arch.h. */
#include "arch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static const Arch *const all[] = {&arch_lstm, &arch_gpt};

int arch_context_keep(int context) {
    return context / 2;
}

const Arch *arch_find(const char *name) {
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, name) == 0) return all[i];
    return NULL;
}

void arch_free(Model *model) {
    if (model->arch) model->arch->free(model);
    memset(model, 0, sizeof *model);
}

long arch_field(const Model *model, const char *name) {
    ArchField f[ARCH_MAX_FIELDS];
    int n = model->arch->fields(model, f);
    for (int i = 0; i < n; i++)
        if (strcmp(f[i].name, name) == 0) return f[i].number;
    return 0;
}

int arch_meta_long(const StFile *f, const char *key, long lo, long hi, long *out, char *err) {
    const char *s = st_meta(f, key);
    if (!s) return err_set(err, "%s: metadata \"%s\" is missing", f->path, key);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return err_set(err, "%s: metadata \"%s\" = \"%.32s\" is not an integer", f->path, key, s);
    if (v < lo || v > hi)
        return err_set(err, "%s: metadata \"%s\" = %ld is out of range %ld..%ld", f->path, key, v,
                       lo, hi);
    *out = v;
    return 0;
}
