/* unicode_data.h - the generated codepoint tables (unicode_data.c, written by
 * tools/gen_unicode_tables.py) that unicode.c searches: category/whitespace flags as sorted ranges
 * (flag bits in unicode.h) and the simple lowercase mapping as strided runs. Constant data only.
 */
#ifndef EDGELM_UNICODE_DATA_H
#define EDGELM_UNICODE_DATA_H

#include <stddef.h>
#include <stdint.h>

typedef struct unicode_case_run {
    uint32_t first; /* first codepoint of the run */
    uint32_t last;  /* last codepoint of the run (inclusive) */
    int32_t stride; /* every stride-th codepoint from first is mapped */
    int32_t delta;  /* mapped value = codepoint + delta */
} unicode_case_run;

extern const uint32_t unicode_flag_ranges[]; /* (first << 11) | flags, ascending */
extern const size_t unicode_flag_ranges_count;
extern const unicode_case_run unicode_lower_runs[]; /* ascending, non-overlapping */
extern const size_t unicode_lower_runs_count;

#endif /* EDGELM_UNICODE_DATA_H */
