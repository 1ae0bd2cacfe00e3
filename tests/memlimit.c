/* tu_limit_memory, in a file of its own so that only the suites that call it link the
 * AddressSanitizer option below. */
#include <malloc.h>
#include <stdio.h>
#include <sys/resource.h>

#include "testutil.h"

static struct rlimit saved;

// The process's mapped bytes, /proc's VmSize.
static size_t vm_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmSize: %zu kB", &kb) == 1) break;
    fclose(f);
    ck_assert_uint_gt(kb, 0);
    return kb * 1024;
}

void tu_limit_memory(size_t spare) {
    mallopt(M_MMAP_THRESHOLD, 1 << 16);
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &saved), 0);
    struct rlimit lim = {vm_bytes() + spare, saved.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
}

void tu_unlimit_memory(void) {
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &saved), 0);
}

// A failed allocation returns NULL, as the C library's does, rather than ending the test.
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    return "allocator_may_return_null=1";
}
