/* file_map.c - mmap a model file read-only (see file_map.h).
 *
 * Weights are used in place from the page cache: nothing is copied, so a model costs file-backed
 * (reclaimable) memory rather than anonymous memory, which matters on 256-512 MB boards. A model
 * that fits in the memory this process may use (RAM, or less under a cgroup limit such as
 * systemd's MemoryMax=: memory_limit.h) is read ahead at once (WILLNEED). One that does not is
 * streamed from the disk on every token and gets no hint at all: measured with a 636 MiB model
 * in a 256 MiB cgroup (tools/bench-memcap, 2 threads), the kernel's own fault-around and
 * read-ahead gave 3.7-3.9 tokens/s, SEQUENTIAL 1.3 (it drops pages the next token needs first),
 * and reading the next layer ahead while the current one computes was slower too (madvise
 * WILLNEED per layer 1.7, a reader thread touching its pages 2.8): the disk is the bound, and
 * extra reads only compete with the pass's own faults.
 */
#include "file_map.h"

#include "memory_limit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Access hints only: a failure changes speed, never results, so it is ignored. A file larger
 * than 3/4 of the memory this process may use (the rest is for the KV cache, scratch and
 * everything else on the board) is streamed: no hint. */
static void advise_access(void *data, size_t size, bool prefault) {
    const uint64_t limit = memory_limit_bytes();
    const bool streamed = limit != 0 && (uint64_t)size > limit / 4 * 3;
    if (!prefault && !streamed) {
        (void)posix_madvise(data, size, POSIX_MADV_WILLNEED);
    }
}

edgelm_status file_map_open(const char *path, bool prefault, file_map *out, char *err,
                            size_t err_size) {
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
        return EDGELM_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, err_size, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return EDGELM_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "%s: not a regular file", path);
        close(fd);
        return EDGELM_ERR_IO;
    }
    if (st.st_size == 0) {
        snprintf(err, err_size, "%s: offset 0: file is empty", path);
        close(fd);
        return EDGELM_ERR_TRUNCATED;
    }
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        snprintf(err, err_size, "%s: file too large for this address space", path);
        close(fd);
        return EDGELM_ERR_TOO_LARGE;
    }
    int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
    if (prefault) {
        flags |= MAP_POPULATE;
    }
#else
    (void)prefault;
#endif
    void *data = mmap(NULL, (size_t)st.st_size, PROT_READ, flags, fd, 0);
    int saved = errno;
    close(fd); /* the mapping keeps its own reference */
    if (data == MAP_FAILED) {
        snprintf(err, err_size, "%s: cannot map: %s", path, strerror(saved));
        return EDGELM_ERR_IO;
    }
    advise_access(data, (size_t)st.st_size, prefault);
    out->data = data;
    out->size = (size_t)st.st_size;
    return EDGELM_OK;
}

void file_map_close(file_map *map) {
    if (map != NULL && map->data != NULL) {
        munmap((void *)(uintptr_t)map->data, map->size);
        map->data = NULL;
        map->size = 0;
    }
}
