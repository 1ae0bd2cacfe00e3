#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tunejob.h"
#include "tunestream.h"

typedef struct Stream Stream;
struct Stream {
    TuneJob *job;
    struct MHD_Connection *conn;
    int next;       // the next event to send
    int done_sent;  // "data: [DONE]" is queued
    int parked;     // suspended, on the waiting list
    int ping;       // send a keepalive comment
    Buf out;        // bytes queued and not yet read by libmicrohttpd
    size_t out_at;  // of out, already read
    Stream *next_s; // the list of open streams
};

static Stream *streams;
static int closing; // the drain: every stream ends

// Wakes every parked stream of j (all of them when j is NULL). With tunejob_mu held.
void tunestream_wake(const TuneJob *j, int ping) {
    for (Stream *s = streams; s; s = s->next_s) {
        if (j && s->job != j) continue;
        s->ping |= ping;
        if (s->parked) {
            s->parked = 0;
            MHD_resume_connection(s->conn);
        }
    }
}

// libmicrohttpd's content reader: the next bytes of events; 0 with the connection parked
// when there are none yet.
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    Stream *s = cls;
    pthread_mutex_lock(&tunejob_mu);
    if (s->out_at == s->out.len) {
        s->out.len = s->out_at = 0;
        TuneJob *j = s->job;
        if (s->next < j->nevents) {
            for (; s->next < j->nevents && s->out.len < 65536; s->next++)
                buf_printf(&s->out, "data: %s\n\n", j->events[s->next]);
        } else if (j->ended || closing) {
            if (s->done_sent) {
                pthread_mutex_unlock(&tunejob_mu);
                return MHD_CONTENT_READER_END_OF_STREAM;
            }
            buf_adds(&s->out, "data: [DONE]\n\n");
            s->done_sent = 1;
        } else if (s->ping) {
            buf_adds(&s->out, ": keepalive\n\n");
        } else {
            s->parked = 1;
            MHD_suspend_connection(s->conn);
            pthread_mutex_unlock(&tunejob_mu);
            return 0;
        }
        s->ping = 0;
        if (s->out.failed) {
            pthread_mutex_unlock(&tunejob_mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = s->out.len - s->out_at < max ? s->out.len - s->out_at : max;
    memcpy(buf, s->out.s + s->out_at, n);
    s->out_at += n;
    pthread_mutex_unlock(&tunejob_mu);
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    Stream *s = cls;
    pthread_mutex_lock(&tunejob_mu);
    for (Stream **p = &streams; *p; p = &(*p)->next_s)
        if (*p == s) {
            *p = s->next_s;
            break;
        }
    pthread_mutex_unlock(&tunejob_mu);
    buf_free(&s->out);
    free(s);
}

struct MHD_Response *tunestream_open(const char *id, struct MHD_Connection *conn, int *status) {
    pthread_mutex_lock(&tunejob_mu);
    TuneJob *j = tunejob_find(id);
    Stream *s = j ? calloc(1, sizeof(*s)) : NULL;
    struct MHD_Response *resp =
        s ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free)
          : NULL;
    if (!resp) {
        *status = j ? 503 : 404;
        free(s);
        pthread_mutex_unlock(&tunejob_mu);
        return NULL;
    }
    s->job = j;
    s->conn = conn;
    s->next_s = streams;
    streams = s;
    pthread_mutex_unlock(&tunejob_mu);
    return resp;
}

void tunestream_on_event(const TuneJob *j) {
    tunestream_wake(j, 0);
}

void tunestream_close_all(void) {
    closing = 1;
    tunestream_wake(NULL, 0);
}
