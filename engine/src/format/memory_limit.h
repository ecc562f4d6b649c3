/* memory_limit.h - how much memory this process may use: the machine's RAM, lowered by the
 * memory limit of its cgroup or any ancestor (cgroup v2 memory.max, v1 memory.limit_in_bytes),
 * which is what systemd's MemoryMax=, a container or tools/bench-memcap set. file_map uses it to
 * tell whether a model fits in memory (then it is read ahead whole) or is streamed from the disk
 * on every token (then the kernel's own read-ahead does best: see file_map.c).
 */
#ifndef EDGELM_MEMORY_LIMIT_H
#define EDGELM_MEMORY_LIMIT_H

#include <stdint.h>

/* Bytes, 0 when not even the RAM size is known. Reads /proc and /sys: call at load, not per
 * token. */
uint64_t memory_limit_bytes(void);

/* The lowest limit on the path of a cgroup, given the text of /proc/self/cgroup and the roots
 * of the v2 and v1 memory hierarchies (e.g. "/sys/fs/cgroup" and "/sys/fs/cgroup/memory");
 * UINT64_MAX when none is set. Separate for the tests, which build such trees in a temporary
 * directory. */
uint64_t memory_limit_of_cgroup(const char *proc_self_cgroup, const char *v2_root,
                                const char *v1_root);

#endif
