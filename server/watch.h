/*
 * watch.h — the socket watcher: a thread that notices clients leaving while their
 * connections are parked.
 *
 * A suspended libmicrohttpd connection is out of the daemon's event loop, which then does
 * not see its client close the socket; a generation whose client has left would run on to
 * max_tokens for nobody. The watcher polls the sockets of the parked connections every
 * WATCH_MS instead, and for one whose client left sets `gone` and calls `left`.
 *
 * An entry is on the list exactly while its connection is parked: the owner adds it just
 * before suspending the connection and removes it just before resuming it, both under a
 * lock that also keeps whatever `left` touches alive (the server's: the worker's lock, held
 * by the Waker's park and wake). The watcher holds only its own lock, so it never sees an
 * entry that was removed, and `left` runs with that lock held: it must not block (the
 * server's asks the scheduler to cancel, sched_cancel_async).
 */
#ifndef CHARLM_WATCH_H
#define CHARLM_WATCH_H

typedef struct Watched {
    int fd;   // the client's socket; -1: not watched (the entry is still listed)
    int gone; // set by the watcher: the client closed the connection
    void (*left)(struct Watched *w);
    struct Watched *prev, *next; // the list's, while listed
} Watched;

/* Starts and stops the watcher thread. watch_stop without a start does nothing. */
int watch_start(char *err);
void watch_stop(void);
/* Lists w (its connection is about to be suspended) and unlists it (about to resume). */
void watch_add(Watched *w);
void watch_remove(Watched *w);

#endif
