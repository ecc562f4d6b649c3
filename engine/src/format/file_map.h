/* file_map.h - read-only memory mapping of a whole file; the only place that talks to the OS
 * about mappings, so a port to another OS touches one file.
 */
#ifndef EDGELM_FILE_MAP_H
#define EDGELM_FILE_MAP_H

#include "edgelm.h"

#include <stddef.h>

typedef struct file_map {
    const void *data;
    size_t size;
} file_map;

/* Map path read-only. prefault asks the kernel to read every page now. Errors name the path and
 * errno's text. */
edgelm_status file_map_open(const char *path, bool prefault, file_map *out, char *err,
                            size_t err_size);
void file_map_close(file_map *map);

#endif
