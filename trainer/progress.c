#include "progress.h"

#include <stdio.h>
#include <unistd.h>

void progress_init(Progress *p, long total, long every) {
    p->tty = isatty(STDERR_FILENO);
    p->total = total;
    p->every = every < 1 ? 1 : every;
}

static void format_eta(double seconds, char *out, size_t len) {
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(out, len, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else
        snprintf(out, len, "%ldm%02lds", s / 60, s % 60);
}

void progress_update(Progress *p, long step, float loss, double val_loss, double tokens_per_s,
                     double elapsed_s, double budget_share, double budget_left) {
    if (!p->tty && step % p->every != 0 && step != p->total) return;
    char eta[32], val[32];
    double per_step = step > 0 ? elapsed_s / step : 0, left = per_step * (p->total - step);
    if (budget_left >= 0 && budget_left < left) left = budget_left;
    format_eta(left, eta, sizeof(eta));
    if (val_loss >= 0)
        snprintf(val, sizeof(val), "%.4f", val_loss);
    else
        snprintf(val, sizeof(val), "-");
    if (p->tty) {
        double done = (double)step / (double)p->total;
        if (budget_share > done) done = budget_share > 1 ? 1 : budget_share;
        int width = 24, fill = (int)(width * done);
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] step %ld/%ld  loss %.4f  val %s  %.0f tok/s  ETA %s   ", bar, step,
                p->total, loss, val, tokens_per_s, eta);
    } else {
        fprintf(stderr, "step %ld/%ld loss %.4f val %s tok/s %.0f elapsed %.1fs eta %s\n", step,
                p->total, loss, val, tokens_per_s, elapsed_s, eta);
    }
    fflush(stderr);
}

void progress_finish(Progress *p) {
    if (p->tty) fputc('\n', stderr);
}
