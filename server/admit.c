#include "admit.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "http.h"
#include "server.h"

static pthread_mutex_t admit_mu = PTHREAD_MUTEX_INITIALIZER;

__attribute__((format(printf, 4, 5))) static int refuse(AdmitRefusal *why, int status,
                                                        const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->message, sizeof(why->message), fmt, ap);
    va_end(ap);
    why->status = status;
    why->param = param;
    return -1;
}

// Under admit_mu: the checks that depend on what runs now; takes the slots.
static int admit_locked(int k, AdmitRefusal *why) {
    if (atomic_load(&srv.shutting_down))
        return refuse(why, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "the server is shutting down");
    long waiting = atomic_load(&srv.reply_bytes_waiting);
    if (waiting > srv.cfg.max_waiting_bytes)
        return refuse(why, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
                      "done replies waiting for their clients hold %ld bytes, more than "
                      "--max-waiting-bytes (%ld); retry shortly",
                      waiting, srv.cfg.max_waiting_bytes);
    if (atomic_fetch_add(&srv.in_flight, k) + k > srv.cfg.max_concurrent) {
        atomic_fetch_sub(&srv.in_flight, k);
        return refuse(why, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
                      "too many generations in flight (limit %d); retry shortly",
                      srv.cfg.max_concurrent);
    }
    atomic_fetch_add(&srv.undelivered, 1);
    return 0;
}

int admit_run(int k, int (*start)(void *ctx, AdmitRefusal *why), void *ctx, AdmitRefusal *why) {
    if (k > srv.cfg.max_concurrent)
        return refuse(why, MHD_HTTP_BAD_REQUEST, "n",
                      "this request asks for %d generations, more than the server runs at once "
                      "(%d)",
                      k, srv.cfg.max_concurrent);
    pthread_mutex_lock(&admit_mu);
    int rc = admit_locked(k, why);
    if (rc == 0 && (rc = start(ctx, why)) != 0) {
        atomic_fetch_sub(&srv.in_flight, k);
        atomic_fetch_sub(&srv.undelivered, 1);
    }
    pthread_mutex_unlock(&admit_mu);
    return rc ? -1 : 0;
}

void admit_stop(void) {
    pthread_mutex_lock(&admit_mu);
    atomic_store(&srv.shutting_down, 1);
    pthread_mutex_unlock(&admit_mu);
}
