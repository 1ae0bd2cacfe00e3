#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "trainproc.h"

// The descriptor the lock is held on in the child: after stdin, stdout and stderr.
#define LOCK_FD 3

int trainproc_locked(const char *lock_path) {
    int fd = open(lock_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    int busy = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd); // releases the lock if we took it
    return busy;
}

pid_t trainproc_spawn(char *const argv[], const char *out_path, const char *err_path,
                      const char *lock_path, char *err) {
    int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0) return err_set(err, "%s: %s", lock_path, strerror(errno));
    if (flock(lock, LOCK_EX | LOCK_NB) != 0) {
        close(lock);
        return err_set(err, "%s: a trainer still runs on this job", lock_path);
    }
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int log = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || log < 0 || devnull < 0) {
        err_set(err, "%s: %s",
                out < 0   ? out_path
                : log < 0 ? err_path
                          : "/dev/null",
                strerror(errno));
        goto fail;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        err_set(err, "fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        // Only async-signal-safe calls from here to exec: the server has other threads.
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(127);
        setpgid(0, 0);
        setpriority(PRIO_PROCESS, 0, getpriority(PRIO_PROCESS, 0) + TRAINPROC_NICE);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(log, 2) < 0 || dup2(lock, LOCK_FD) < 0)
            _exit(127);
        // The listening socket and every connection stay the server's alone.
        close_range(LOCK_FD + 1, ~0U, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out);
    close(log);
    close(devnull);
    close(lock); // the child's copy holds the lock now
    return pid;
fail:
    if (out >= 0) close(out);
    if (log >= 0) close(log);
    if (devnull >= 0) close(devnull);
    close(lock);
    return -1;
}

static int status_code(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int trainproc_poll(pid_t pid, int *code) {
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
        *code = status_code(status);
        return 1;
    }
    if (r < 0 && errno == ECHILD) {
        *code = 128 + SIGKILL; // not ours any more: count it as killed
        return 1;
    }
    return 0;
}

void trainproc_stop(pid_t pid) {
    kill(-pid, SIGTERM);
}

int trainproc_wait(pid_t pid, double seconds) {
    int code;
    struct timespec nap = {0, 20 * 1000 * 1000};
    for (double waited = 0; waited < seconds; waited += 0.02) {
        if (trainproc_poll(pid, &code)) return code;
        nanosleep(&nap, NULL);
    }
    kill(-pid, SIGKILL);
    int status;
    return waitpid(pid, &status, 0) == pid ? status_code(status) : 128 + SIGKILL;
}
