/* unicode.c - codepoint classification, lowercasing, lenient UTF-8 and the GPT-2 byte alphabet
 * (see unicode.h). Lookups are binary searches over the generated tables in unicode_data.c;
 * nothing here allocates or keeps state.
 */
#include "unicode.h"
#include "unicode_data.h"

#include <stdbool.h>

uint32_t unicode_flags(uint32_t cpt) {
    if (cpt > UNICODE_MAX_CODEPOINT) {
        return UNICODE_UNDEFINED;
    }
    /* Last range whose first codepoint is <= cpt; entry 0 starts at U+0000. */
    size_t lo = 0, hi = unicode_flag_ranges_count;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((unicode_flag_ranges[mid] >> 11) <= cpt) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return unicode_flag_ranges[lo] & 0x7FFu;
}

uint32_t unicode_tolower(uint32_t cpt) {
    size_t lo = 0, hi = unicode_lower_runs_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const unicode_case_run *run = &unicode_lower_runs[mid];
        if (cpt < run->first) {
            hi = mid;
        } else if (cpt > run->last) {
            lo = mid + 1;
        } else {
            if ((cpt - run->first) % (uint32_t)run->stride == 0) {
                return (uint32_t)((int64_t)cpt + run->delta);
            }
            return cpt;
        }
    }
    return cpt;
}

size_t unicode_utf8_len(uint8_t lead) {
    static const uint8_t len_by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len_by_high_nibble[lead >> 4];
}

static bool is_continuation(uint8_t b) { return (b & 0xC0u) == 0x80u; }

uint32_t unicode_utf8_decode(const uint8_t *s, size_t len, size_t *consumed) {
    uint8_t b0 = s[0];
    uint32_t cpt;
    size_t n;
    if ((b0 & 0x80u) == 0) {
        *consumed = 1;
        return b0;
    }
    if ((b0 & 0x40u) == 0) {
        goto invalid; /* a stray continuation byte */
    }
    if ((b0 & 0x20u) == 0) {
        n = 2;
        cpt = b0 & 0x1Fu;
    } else if ((b0 & 0x10u) == 0) {
        n = 3;
        cpt = b0 & 0x0Fu;
    } else if ((b0 & 0x08u) == 0) {
        n = 4;
        cpt = b0 & 0x07u;
    } else {
        goto invalid;
    }
    if (len < n) {
        goto invalid;
    }
    for (size_t i = 1; i < n; i++) {
        if (!is_continuation(s[i])) {
            goto invalid;
        }
        cpt = (cpt << 6) | (s[i] & 0x3Fu);
    }
    if (cpt > UNICODE_MAX_CODEPOINT) {
        goto invalid;
    }
    *consumed = n;
    return cpt;
invalid:
    *consumed = 1;
    return UNICODE_REPLACEMENT;
}

size_t unicode_utf8_encode(uint32_t cpt, uint8_t out[4]) {
    if (cpt <= 0x7Fu) {
        out[0] = (uint8_t)cpt;
        return 1;
    }
    if (cpt <= 0x7FFu) {
        out[0] = (uint8_t)(0xC0u | (cpt >> 6));
        out[1] = (uint8_t)(0x80u | (cpt & 0x3Fu));
        return 2;
    }
    if (cpt <= 0xFFFFu) {
        out[0] = (uint8_t)(0xE0u | (cpt >> 12));
        out[1] = (uint8_t)(0x80u | ((cpt >> 6) & 0x3Fu));
        out[2] = (uint8_t)(0x80u | (cpt & 0x3Fu));
        return 3;
    }
    out[0] = (uint8_t)(0xF0u | ((cpt >> 18) & 0x07u));
    out[1] = (uint8_t)(0x80u | ((cpt >> 12) & 0x3Fu));
    out[2] = (uint8_t)(0x80u | ((cpt >> 6) & 0x3Fu));
    out[3] = (uint8_t)(0x80u | (cpt & 0x3Fu));
    return 4;
}

/* GPT-2's bytes_to_unicode(): '!'..'~', U+00A1..U+00AC and U+00AE..U+00FF stand for themselves;
 * the remaining 68 bytes, in increasing order, take U+0100, U+0101, ... */
static bool byte_is_printable(unsigned b) {
    return (b >= 0x21u && b <= 0x7Eu) || (b >= 0xA1u && b <= 0xACu) || (b >= 0xAEu && b <= 0xFFu);
}

uint32_t unicode_byte_to_cpt(uint8_t byte) {
    if (byte_is_printable(byte)) {
        return byte;
    }
    /* Count the non-printable bytes below this one: 0x00..0x20 (33), then 0x7F..0xA0 (34),
     * then 0xAD. */
    uint32_t n;
    if (byte <= 0x20u) {
        n = byte;
    } else if (byte <= 0xA0u) {
        n = 33u + (byte - 0x7Fu);
    } else {
        n = 67u; /* 0xAD */
    }
    return 0x100u + n;
}

int unicode_cpt_to_byte(uint32_t cpt) {
    if (cpt < 0x100u) {
        return byte_is_printable(cpt) ? (int)cpt : -1;
    }
    uint32_t n = cpt - 0x100u;
    if (n <= 32u) {
        return (int)n;
    }
    if (n <= 66u) {
        return (int)(0x7Fu + (n - 33u));
    }
    if (n == 67u) {
        return 0xAD;
    }
    return -1;
}
