#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"

char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t n = a;
    if (a > 0 && dir[a - 1] != '/') p[n++] = '/';
    memcpy(p + n, name, b + 1);
    return p;
}

int path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int file_read_all(const char *path, size_t max, char **data, size_t *len, char *err) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return err_set(err, "%s: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return err_set(err, "%s: is a directory", path);
    }
    // A device such as /dev/zero would be read until memory runs out.
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
        fclose(f);
        return err_set(err, "%s: not a regular file or a pipe", path);
    }
    Buf b;
    if (buf_init(&b, st.st_size > 0 ? (size_t)st.st_size + 1 : 4096) != 0) {
        fclose(f);
        return err_set(err, "%s: out of memory", path);
    }
    // Read until EOF rather than trusting st_size: pipes and /proc files report 0. The
    // buffer grows only when a byte beyond it is known to exist.
    for (;;) {
        if (max && b.len > max) break;
        if (b.len + 1 >= b.cap) {
            int c = fgetc(f);
            if (c == EOF) break;
            ungetc(c, f);
        }
        size_t want = b.len + 1 >= b.cap ? b.cap : b.cap - 1 - b.len;
        char *p = buf_room(&b, want);
        if (!p) {
            buf_free(&b);
            fclose(f);
            return err_set(err, "%s: out of memory", path);
        }
        size_t got = fread(p, 1, want, f);
        b.len += got;
        b.s[b.len] = '\0';
        if (got < want) break;
    }
    if (ferror(f)) {
        buf_free(&b);
        fclose(f);
        return err_set(err, "%s: read error", path);
    }
    fclose(f);
    if (max && b.len > max) {
        buf_free(&b);
        return err_set(err, "%s: larger than %zu bytes", path, max);
    }
    *data = b.s;
    *len = b.len;
    return 0;
}

static int not_regular(const char *path, const struct stat *st, char *err) {
    return err_set(err, "%s: %s", path,
                   S_ISDIR(st->st_mode) ? "is a directory" : "not a regular file");
}

int file_open_regular(const char *path, struct stat *st, char *err) {
    // stat first so that a device is never opened at all, then fstat what was opened in
    // case the name was swapped in between.
    if (stat(path, st) != 0) return err_set(err, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st->st_mode)) return not_regular(path, st, err);
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer.
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return err_set(err, "%s: %s", path, strerror(errno));
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        int e = errno;
        close(fd);
        return S_ISREG(st->st_mode) ? err_set(err, "%s: %s", path, strerror(e))
                                    : not_regular(path, st, err);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, "%s: %s", path, strerror(e));
    }
    return fd;
}

int file_read_exact(int fd, void *buf, size_t n, const char *path, char *err) {
    char *p = buf;
    while (n > 0) {
        ssize_t got = read(fd, p, n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return err_set(err, "%s: %s", path, strerror(errno));
        if (got == 0) return err_set(err, "%s: file shrank while being read", path);
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

static int same_time(struct timespec a, struct timespec b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

int file_check_unchanged(int fd, const struct stat *before, const char *path, char *err) {
    struct stat now;
    if (fstat(fd, &now) != 0) return err_set(err, "%s: %s", path, strerror(errno));
    // Not the change time: a file replaced by a rename while it is read has its link
    // count, and so its change time, changed, yet what was read of it is whole.
    if (now.st_size != before->st_size || !same_time(now.st_mtim, before->st_mtim))
        return err_set(err, "%s: changed while being read", path);
    return 0;
}

int file_read_regular(const char *path, size_t max, char **data, size_t *len, char *err) {
    *data = NULL;
    *len = 0;
    struct stat st;
    int fd = file_open_regular(path, &st, err);
    if (fd < 0) return -1;
    size_t size = (size_t)st.st_size;
    if (max && size > max) {
        close(fd);
        return err_set(err, "%s: larger than %zu bytes", path, max);
    }
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return err_set(err, "%s: out of memory", path);
    }
    int rc = file_read_exact(fd, buf, size, path, err);
    close(fd);
    if (rc != 0) {
        free(buf);
        return -1;
    }
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return 0;
}

int file_write_atomic(const char *path, const void *const *parts, const size_t *lens, int n,
                      char *err) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return err_set(err, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    FILE *f = fopen(tmp, "wb");
    if (!f) {
        err_set(err, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int ok = 1;
    for (int i = 0; i < n && ok; i++)
        if (lens[i] > 0 && fwrite(parts[i], 1, lens[i], f) != lens[i]) ok = 0;
    if (ok && fflush(f) != 0) ok = 0;
    if (ok && fsync(fileno(f)) != 0) ok = 0;
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        free(tmp);
        return err_set(err, "%s: write failed: %s", path, strerror(e));
    }
    free(tmp);
    return 0;
}

void sha256_hex_parts(const void *const *parts, const size_t *lens, int n, char *hex) {
    unsigned char digest[32];
    static const char digits[] = "0123456789abcdef";
    gnutls_hash_hd_t h;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) != 0) {
        // Only fails when out of memory; an impossible digest then fails any comparison.
        memset(hex, 'x', 64);
        hex[64] = '\0';
        return;
    }
    for (int i = 0; i < n; i++)
        if (lens[i] > 0) gnutls_hash(h, parts[i], lens[i]);
    gnutls_hash_deinit(h, digest);
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

void sha256_hex(const void *data, size_t len, char *hex) {
    const void *parts[] = {data};
    sha256_hex_parts(parts, &len, 1, hex);
}

int dir_ensure(const char *dir, char *err) {
    size_t len = strlen(dir);
    char *p = malloc(len + 1);
    if (!p) return err_set(err, "%s: out of memory", dir);
    memcpy(p, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            err_set(err, "%s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        p[i] = saved;
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0) return err_set(err, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return err_set(err, "%s: not a directory", dir);
    return 0;
}
