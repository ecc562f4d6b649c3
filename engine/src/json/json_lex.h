/* json_lex.h - the state of the scalar being read (string, number, literal, enum text or key)
 * and the one part of lexing that needs no context: the string-byte automaton. Not the walker:
 * numbers, literals and literal sets step in json_grammar.c, where the schema and the frames
 * are. Kept apart so the vocabulary table (json_vocab.c) can precompute each token's effect
 * inside a string without depending on the automaton that reads that table.
 */
#ifndef EDGELM_JSON_LEX_H
#define EDGELM_JSON_LEX_H

#include <stdbool.h>
#include <stdint.h>

enum { L_NONE = 0, L_STR, L_NUM, L_LIT, L_MATCH };
/* string sub-states */
enum { S_CHAR = 0, S_ESC, S_HEX, S_LOW_BS, S_LOW_U };
/* number sub-states (RFC 8259 section 6) */
enum { N_START = 0, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

/* The scalar being read (string, number, literal, enum text or object key) plus the
 * whitespace flag. Owned by the top frame: nothing is pushed while a scalar is open. */
typedef struct js_lex {
    uint8_t kind;                  /* L_* */
    uint8_t sub;                   /* S_* / N_* / literal index */
    uint8_t is_key;                /* the scalar is an object key */
    uint8_t ws;                    /* the previous byte was whitespace */
    uint8_t u8_need, u8_lo, u8_hi; /* UTF-8 continuation bytes still due, range of the next */
    uint8_t hex_n;                 /* \u digits read */
    uint8_t low;                   /* reading the low half of a surrogate pair */
    uint16_t hex;                  /* \u value so far */
    uint32_t n;                    /* string: characters; number/literal/match: bytes */
    uint32_t min_len, max_len;     /* string bounds */
    int32_t node;                  /* number: its node (integer flag) */
    uint32_t base, cand, hi;       /* match: lits[base + cand] best candidate, candidates <= hi */
} js_lex;

/* Start a string (after its opening quote) of min_len .. max_len characters. */
void js_lex_string(js_lex *lx, uint32_t min_len, uint32_t max_len, bool is_key);
/* In a string, between characters (no escape or UTF-8 sequence open). */
bool js_clean_string(const js_lex *lx);
/* One string-content byte from lx (no parent frames involved): 1 ok, 0 refused, 2 closing
 * quote (bounds not checked). */
int js_str_byte(js_lex *lx, uint8_t c);

#endif /* EDGELM_JSON_LEX_H */
