/* test_memory_limit.c - format/memory_limit: the cgroup limit read from fixture trees
 * (tests/data/cgroup/<case>/: proc_self_cgroup, the v1 and v2 hierarchies, and the expected
 * bytes or "none"): systemd's MemoryMax on a service, a lower limit on a parent, cgroup v1's
 * "unlimited", tools/bench-memcap's v1 group, no files at all, malformed lines and values. Then
 * this machine's figure, which may not exceed its RAM.
 */
#include "format/memory_limit.h"
#include "test_util.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_fixture_case(const char *dir, const char *name) { /* dir < 1024, name < 256 */
    char path[1400], v1[1400], v2[1400];
    snprintf(path, sizeof path, "%s/%s/proc_self_cgroup", dir, name);
    size_t n = 0;
    unsigned char *text = test_read_file(path, &n);
    snprintf(path, sizeof path, "%s/%s/expected", dir, name);
    size_t en = 0;
    unsigned char *expected_text = test_read_file(path, &en);
    CHECK_MSG(text != NULL && expected_text != NULL, "%s: fixture files missing", name);
    if (text == NULL || expected_text == NULL) {
        free(text);
        free(expected_text);
        return;
    }
    const uint64_t expected = strncmp((const char *)expected_text, "none", 4) == 0
                                  ? UINT64_MAX
                                  : (uint64_t)strtoull((const char *)expected_text, NULL, 10);
    snprintf(v1, sizeof v1, "%s/%s/v1", dir, name);
    snprintf(v2, sizeof v2, "%s/%s/v2", dir, name);
    const uint64_t got = memory_limit_of_cgroup((const char *)text, v2, v1);
    CHECK_MSG(got == expected, "%s: limit %" PRIu64 ", expected %" PRIu64, name, got, expected);
    free(text);
    free(expected_text);
}

static void test_fixtures(void) {
    char dir[1024];
    test_data_path("cgroup", dir, sizeof dir);
    DIR *d = opendir(dir);
    CHECK_MSG(d != NULL, "cannot open %s", dir);
    if (d == NULL) {
        return;
    }
    int cases = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            test_fixture_case(dir, e->d_name);
            cases++;
        }
    }
    closedir(d);
    CHECK_MSG(cases >= 6, "only %d cgroup fixtures", cases);
}

static void test_this_machine(void) {
    const uint64_t limit = memory_limit_bytes();
    const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    const uint64_t ram = pages > 0 && page_size > 0 ? (uint64_t)pages * (uint64_t)page_size : 0;
    CHECK_MSG(limit > 0, "no memory figure on this machine");
    CHECK_MSG(ram == 0 || limit <= ram, "limit %" PRIu64 " above the RAM %" PRIu64, limit, ram);
    fprintf(stderr, "  this process may use %.0f MiB (RAM %.0f MiB)\n", (double)limit / 1048576.0,
            (double)ram / 1048576.0);
}

int main(void) {
    test_fixtures();
    test_this_machine();
    return test_finish("test_memory_limit", 0);
}
