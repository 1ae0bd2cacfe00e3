/*
 * trainproc.h — a training run as a child process: charlm-train started niced, in its own
 * process group, with every descriptor of the server closed but its logs, and tied to the
 * server so that it never outlives it: it gets SIGTERM (and so writes its checkpoint)
 * when the server dies, even by SIGKILL.
 *
 * A run holds an exclusive lock (flock) on a file of its job for as long as it lives, so
 * that a server started again while a child of the previous one is still writing its
 * checkpoint waits for it instead of running a second trainer on the same folder.
 */
#ifndef CHARLM_TRAINPROC_H
#define CHARLM_TRAINPROC_H

#include <sys/types.h>

// How much lower the trainer's priority is than the server's (nice(2)'s increment).
#define TRAINPROC_NICE 10

/* Starts argv (argv[0] the program's path) with stdout to out_path (truncated) and stderr
 * to err_path (appended), holding the lock on lock_path. Returns the child's pid, or -1
 * with err set (nothing started). */
pid_t trainproc_spawn(char *const argv[], const char *out_path, const char *err_path,
                      const char *lock_path, char *err);
/* 1 while some process holds lock_path's lock (a run still going), else 0. */
int trainproc_locked(const char *lock_path);
/* Reaps pid if it has ended: returns 1 with *code its exit status (128 + the signal that
 * killed it), 0 while it runs. */
int trainproc_poll(pid_t pid, int *code);
/* Asks pid's process group to stop (SIGTERM: it writes its checkpoint and exits 130). */
void trainproc_stop(pid_t pid);
/* Waits up to `seconds` for pid to end, then kills it; returns its exit status as poll. */
int trainproc_wait(pid_t pid, double seconds);

#endif
