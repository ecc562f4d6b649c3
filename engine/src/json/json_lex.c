/* json_lex.c - the string-byte automaton of the JSON lexer: strict UTF-8 and RFC 8259 escapes,
 * one byte at a time, with no schema and no frames involved (the walker in json_grammar.c adds
 * minLength and what follows the closing quote; json_vocab.c runs it over every token once).
 * Invariant: every prefix it accepts can still be completed to a valid string (json_closing.c).
 */
#include "json_lex.h"

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

void js_lex_string(js_lex *lx, uint32_t min_len, uint32_t max_len, bool is_key) {
    lx->kind = L_STR;
    lx->sub = S_CHAR;
    lx->is_key = is_key;
    lx->u8_need = 0;
    lx->n = 0;
    lx->min_len = min_len;
    lx->max_len = max_len;
}

bool js_clean_string(const js_lex *lx) {
    return lx->kind == L_STR && lx->sub == S_CHAR && lx->u8_need == 0;
}

/* Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF), escapes per RFC 8259
 * section 7 with surrogate pairs enforced and \u0000 refused (a NUL inside a string breaks
 * C consumers). Each accepted prefix can still be completed. */
int js_str_byte(js_lex *lx, uint8_t c) {
    if (lx->u8_need) {
        if (c < lx->u8_lo || c > lx->u8_hi) {
            return 0;
        }
        lx->u8_need--;
        lx->u8_lo = 0x80;
        lx->u8_hi = 0xBF;
        return 1;
    }
    switch (lx->sub) {
    case S_CHAR:
        if (c == '"') {
            return 2;
        }
        if (lx->n >= lx->max_len || c < 0x20) {
            return 0;
        }
        if (c == '\\') {
            lx->sub = S_ESC;
        } else if (c >= 0x80) {
            uint8_t need, lo = 0x80, hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) {
                need = 1;
            } else if (c >= 0xE0 && c <= 0xEF) {
                need = 2;
                lo = c == 0xE0 ? 0xA0 : 0x80;
                hi = c == 0xED ? 0x9F : 0xBF;
            } else if (c >= 0xF0 && c <= 0xF4) {
                need = 3;
                lo = c == 0xF0 ? 0x90 : 0x80;
                hi = c == 0xF4 ? 0x8F : 0xBF;
            } else {
                return 0;
            }
            lx->u8_need = need;
            lx->u8_lo = lo;
            lx->u8_hi = hi;
        }
        lx->n++;
        return 1;
    case S_ESC:
        switch (c) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            lx->sub = S_CHAR;
            return 1;
        case 'u':
            lx->sub = S_HEX;
            lx->hex_n = 0;
            lx->hex = 0;
            lx->low = 0;
            return 1;
        default:
            return 0;
        }
    case S_HEX: {
        int d = hexval(c);
        if (d < 0) {
            return 0;
        }
        if (lx->low) {
            /* the low half: DC00-DFFF */
            if ((lx->hex_n == 0 && d != 0xD) || (lx->hex_n == 1 && d < 0xC)) {
                return 0;
            }
        } else if ((lx->hex_n == 1 && lx->hex == 0xD && d >= 0xC) ||
                   (lx->hex_n == 3 && lx->hex == 0 && d == 0)) {
            return 0; /* a lone low surrogate, or U+0000 */
        }
        lx->hex = (uint16_t)(lx->hex * 16 + d);
        if (++lx->hex_n == 4) {
            lx->sub = !lx->low && lx->hex >= 0xD800 && lx->hex <= 0xDBFF ? S_LOW_BS : S_CHAR;
        }
        return 1;
    }
    case S_LOW_BS:
        if (c != '\\') {
            return 0;
        }
        lx->sub = S_LOW_U;
        return 1;
    case S_LOW_U:
        if (c != 'u') {
            return 0;
        }
        lx->sub = S_HEX;
        lx->hex_n = 0;
        lx->hex = 0;
        lx->low = 1;
        return 1;
    default:
        return 0;
    }
}
