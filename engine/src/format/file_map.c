/* file_map.c - mmap a model file read-only (see file_map.h).
 *
 * Weights are used in place from the page cache: nothing is copied, so a model costs file-backed
 * (reclaimable) memory rather than anonymous memory, which matters on 256-512 MB boards. The
 * kernel is told how the pages will be read: a model that fits in RAM is read ahead at once
 * (WILLNEED); one that does not is streamed layer by layer on every token (SEQUENTIAL: large
 * read-ahead, and pages behind the reader are the first to be reclaimed).
 */
#include "file_map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Physical memory in bytes, 0 when unknown. */
static uint64_t physical_memory_bytes(void) {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page_size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page_size > 0) {
        return (uint64_t)pages * (uint64_t)page_size;
    }
#endif
    return 0;
}

/* Access hints only: a failure changes speed, never results, so it is ignored. */
static void advise_access(void *data, size_t size, bool prefault) {
    if (prefault) {
        return; /* MAP_POPULATE already read everything */
    }
    const uint64_t ram = physical_memory_bytes();
    /* the model must leave room for the KV cache, scratch and everything else on the board */
    if (ram != 0 && (uint64_t)size > ram / 4 * 3) {
        (void)posix_madvise(data, size, POSIX_MADV_SEQUENTIAL);
    } else {
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
