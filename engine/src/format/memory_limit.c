/* memory_limit.c - RAM size and cgroup memory limits (see memory_limit.h).
 *
 * /proc/self/cgroup has one line per hierarchy, "ID:CONTROLLERS:PATH": "0::/PATH" is the
 * cgroup v2 one, "N:...memory...:/PATH" the v1 memory controller. A limit set on any ancestor
 * applies too, so the path is walked up to the root and the lowest limit wins. "max" (v2) and
 * v1's huge "unlimited" value (PAGE_COUNTER_MAX pages) mean no limit. Every read is bounded and
 * a missing or unreadable file means "no limit here": a wrong guess costs speed, never results.
 */
#include "memory_limit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CGROUP_LINE_MAX 1024
#define CGROUP_PATH_MAX 1400

/* A limit file's value: its number, UINT64_MAX for "max", a missing file or anything else. */
static uint64_t read_limit_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return UINT64_MAX;
    }
    char text[64];
    uint64_t value = UINT64_MAX;
    if (fgets(text, sizeof text, f) != NULL && text[0] >= '0' && text[0] <= '9') {
        char *end = NULL;
        const unsigned long long v = strtoull(text, &end, 10);
        if (end != text && (*end == '\n' || *end == '\0')) {
            value = (uint64_t)v;
        }
    }
    fclose(f);
    /* v1 reports "unlimited" as PAGE_COUNTER_MAX pages, about 2^63 rounded to a page */
    return value >= (UINT64_C(1) << 62) ? UINT64_MAX : value;
}

/* Lowest limit of root/dir/file and of every ancestor of dir up to root. */
static uint64_t lowest_limit_on_path(const char *root, const char *dir, const char *file) {
    char path[CGROUP_PATH_MAX];
    char rel[CGROUP_LINE_MAX];
    snprintf(rel, sizeof rel, "%s", dir);
    uint64_t lowest = UINT64_MAX;
    for (;;) {
        const size_t len = strlen(rel);
        if (len > 0 && rel[len - 1] == '/') {
            rel[len - 1] = '\0'; /* "/" itself becomes "" */
        }
        const int n = snprintf(path, sizeof path, "%s%s/%s", root, rel, file);
        if (n > 0 && (size_t)n < sizeof path) {
            const uint64_t v = read_limit_file(path);
            lowest = v < lowest ? v : lowest;
        }
        char *slash = strrchr(rel, '/');
        if (slash == NULL) {
            break;
        }
        *slash = '\0';
    }
    return lowest;
}

uint64_t memory_limit_of_cgroup(const char *proc_self_cgroup, const char *v2_root,
                                const char *v1_root) {
    uint64_t lowest = UINT64_MAX;
    const char *line = proc_self_cgroup;
    while (line != NULL && *line != '\0') {
        const char *eol = strchr(line, '\n');
        const size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
        char text[CGROUP_LINE_MAX];
        if (len < sizeof text) {
            memcpy(text, line, len);
            text[len] = '\0';
            char *first = strchr(text, ':');
            char *second = first != NULL ? strchr(first + 1, ':') : NULL;
            if (second != NULL && second[1] == '/') {
                *second = '\0';
                const char *controllers = first + 1;
                const char *dir = second + 1;
                uint64_t v = UINT64_MAX;
                if (controllers[0] == '\0' && first == text + 1 && text[0] == '0') {
                    v = lowest_limit_on_path(v2_root, dir, "memory.max");
                } else {
                    /* v1: "memory" among the comma-separated controllers */
                    char list[CGROUP_LINE_MAX];
                    snprintf(list, sizeof list, ",%s,", controllers);
                    if (strstr(list, ",memory,") != NULL) {
                        v = lowest_limit_on_path(v1_root, dir, "memory.limit_in_bytes");
                    }
                }
                lowest = v < lowest ? v : lowest;
            }
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
    return lowest;
}

uint64_t memory_limit_bytes(void) {
    uint64_t ram = 0;
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page_size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page_size > 0) {
        ram = (uint64_t)pages * (uint64_t)page_size;
    }
#endif
    char text[4096];
    size_t n = 0;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f != NULL) {
        n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    /* v2 alone is mounted at /sys/fs/cgroup; beside v1 (hybrid), at /sys/fs/cgroup/unified */
    const char *v2_root =
        access("/sys/fs/cgroup/unified", F_OK) == 0 ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup";
    const uint64_t cgroup = memory_limit_of_cgroup(text, v2_root, "/sys/fs/cgroup/memory");
    if (ram == 0) {
        return cgroup == UINT64_MAX ? 0 : cgroup;
    }
    return cgroup < ram ? cgroup : ram;
}
