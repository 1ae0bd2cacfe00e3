#include "watch.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "error.h"

// How often the watcher looks at the sockets of parked connections.
#define WATCH_MS 100

static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_cv = PTHREAD_COND_INITIALIZER;
static Watched *watch_head;
static int watch_count, watch_stopping, watch_started;
static pthread_t watch_thread;

static void *watch_main(void *arg) {
    (void)arg;
    struct pollfd *fds = NULL;
    Watched **ws = NULL; // [cap] the entry of each fds[i]
    int cap = 0;
    pthread_mutex_lock(&watch_mu);
    while (!watch_stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WATCH_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&watch_cv, &watch_mu, &until);
        if (watch_count > cap) {
            int c = watch_count * 2;
            struct pollfd *f = realloc(fds, (size_t)c * sizeof(*f));
            if (f) fds = f;
            Watched **w = realloc(ws, (size_t)c * sizeof(*w));
            if (w) ws = w;
            if (!f || !w) continue; // try again next round
            cap = c;
        }
        int n = 0;
        for (Watched *w = watch_head; w; w = w->next) {
            if (w->gone || w->fd < 0) continue;
            fds[n] = (struct pollfd){.fd = w->fd, .events = POLLRDHUP};
            ws[n++] = w;
        }
        if (n == 0 || poll(fds, (nfds_t)n, 0) <= 0) continue;
        for (int i = 0; i < n; i++) {
            if (!(fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) continue;
            ws[i]->gone = 1;
            ws[i]->left(ws[i]);
        }
    }
    pthread_mutex_unlock(&watch_mu);
    free(fds);
    free(ws);
    return NULL;
}

int watch_start(char *err) {
    if (pthread_create(&watch_thread, NULL, watch_main, NULL) != 0)
        return err_set(err, "cannot start the connection watcher");
    watch_started = 1;
    return 0;
}

void watch_stop(void) {
    if (!watch_started) return;
    pthread_mutex_lock(&watch_mu);
    watch_stopping = 1;
    pthread_cond_signal(&watch_cv);
    pthread_mutex_unlock(&watch_mu);
    pthread_join(watch_thread, NULL);
    watch_started = 0;
}

void watch_add(Watched *w) {
    pthread_mutex_lock(&watch_mu);
    w->prev = NULL;
    w->next = watch_head;
    if (watch_head) watch_head->prev = w;
    watch_head = w;
    watch_count++;
    pthread_mutex_unlock(&watch_mu);
}

void watch_remove(Watched *w) {
    pthread_mutex_lock(&watch_mu);
    if (w->prev)
        w->prev->next = w->next;
    else
        watch_head = w->next;
    if (w->next) w->next->prev = w->prev;
    watch_count--;
    pthread_mutex_unlock(&watch_mu);
}
