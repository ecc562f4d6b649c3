/* json_schema.c - compiles JSON Schema text into the node graph the grammar walks.
 * Supported: type (names and arrays), properties, required, additionalProperties, items,
 * minItems/maxItems, minLength/maxLength, enum, const, anyOf, oneOf, boolean schema true.
 * Ignored (no effect on validation): title, description, $schema, $id, $comment, examples,
 * default, deprecated, readOnly, writeOnly. Anything else is EDGELM_ERR_BAD_SCHEMA naming the
 * keyword and its JSON pointer. Every node is satisfiable and has a precomputed shortest value.
 */
#include "json_schema.h"

#include "base/error_text.h"
#include "base/growable_array.h"

#include "json_parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct compiler {
    json_schema *s;
    size_t cap_nodes, cap_props, cap_alts, cap_lits;
    byte_buffer text;
    char ptr[512]; /* JSON pointer of the schema being compiled */
    size_t ptr_len;
    char *err;
    size_t err_size;
    edgelm_status st;
} compiler;

static int32_t fail(compiler *c, edgelm_status st, const char *fmt, ...) {
    if (c->st == EDGELM_OK) {
        c->st = st;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->err_size, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int32_t oom(compiler *c) {
    return fail(c, EDGELM_ERR_OUT_OF_MEMORY, "out of memory compiling the schema");
}

/* The pointer as text ("" is the root, shown as "/"). */
static const char *ptr_text(const compiler *c) { return c->ptr_len ? c->ptr : "/"; }

/* Appends "/segment" (RFC 6901 escaping); returns the old length for ptr_pop. A pointer too
 * long for the buffer ends in "..." (messages only). */
static size_t ptr_push(compiler *c, const char *seg, size_t seg_len) {
    size_t old = c->ptr_len;
    size_t cap = sizeof c->ptr - 4;
    if (c->ptr_len < cap) {
        c->ptr[c->ptr_len++] = '/';
    }
    for (size_t i = 0; i < seg_len && c->ptr_len < cap; i++) {
        char ch = seg[i];
        if (ch == '~' || ch == '/') {
            if (c->ptr_len + 2 > cap) {
                break;
            }
            c->ptr[c->ptr_len++] = '~';
            c->ptr[c->ptr_len++] = ch == '~' ? '0' : '1';
        } else {
            c->ptr[c->ptr_len++] = ch;
        }
    }
    if (c->ptr_len >= cap) {
        memcpy(c->ptr + cap, "...", 3);
        c->ptr_len = cap + 3;
    }
    c->ptr[c->ptr_len] = '\0';
    return old;
}

static size_t ptr_push_index(compiler *c, size_t i) {
    char num[24];
    int n = snprintf(num, sizeof num, "%zu", i);
    return ptr_push(c, num, (size_t)n);
}

static void ptr_pop(compiler *c, size_t old) {
    c->ptr_len = old;
    c->ptr[old] = '\0';
}

static bool grow(void *arr, size_t *cap, uint32_t need, size_t elem) {
    return array_reserve(arr, cap, need, elem, 16);
}

static int32_t new_node(compiler *c) {
    json_schema *s = c->s;
    if (s->n_nodes >= (uint32_t)INT32_MAX ||
        !grow(&s->nodes, &c->cap_nodes, s->n_nodes + 1, sizeof *s->nodes)) {
        return oom(c);
    }
    js_node *n = &s->nodes[s->n_nodes];
    memset(n, 0, sizeof *n);
    n->classes = JC_ALL;
    n->sem = JC_ALL;
    n->additional = 0;
    n->items = 0;
    n->max_items = UINT32_MAX;
    n->max_len = UINT32_MAX;
    return (int32_t)s->n_nodes++;
}

/* Appends a literal; returns its index or -1. */
static int32_t add_lit(compiler *c, const char *bytes, size_t len) {
    json_schema *s = c->s;
    if (len > UINT32_MAX || c->text.len > UINT32_MAX - len ||
        !grow(&s->lits, &c->cap_lits, s->n_lits + 1, sizeof *s->lits)) {
        return oom(c);
    }
    uint32_t off = (uint32_t)c->text.len;
    if (!byte_buffer_append(&c->text, bytes, len)) {
        return oom(c);
    }
    s->lits[s->n_lits].off = off;
    s->lits[s->n_lits].len = (uint32_t)len;
    return (int32_t)s->n_lits++;
}

/* ---- keyword table ----------------------------------------------------------------------------
 */

enum {
    K_TYPE,
    K_PROPERTIES,
    K_REQUIRED,
    K_ADDITIONAL,
    K_ITEMS,
    K_MIN_ITEMS,
    K_MAX_ITEMS,
    K_MIN_LENGTH,
    K_MAX_LENGTH,
    K_ENUM,
    K_CONST,
    K_ANY_OF,
    K_ONE_OF,
    K_COUNT
};

static const char *const keyword_names[K_COUNT] = {
    "type",      "properties", "required", "additionalProperties",
    "items",     "minItems",   "maxItems", "minLength",
    "maxLength", "enum",       "const",    "anyOf",
    "oneOf"};

/* Annotations with no effect on validation: accepted and ignored. */
static const char *const ignored_names[] = {"title",    "description", "$schema", "$id",
                                            "$comment", "examples",    "default", "deprecated",
                                            "readOnly", "writeOnly"};

static uint8_t class_of_value(const js_value *v) {
    switch (v->type) {
    case JV_OBJECT:
        return JC_OBJ;
    case JV_ARRAY:
        return JC_ARR;
    case JV_STRING:
        return JC_STR;
    case JV_NUMBER:
        return JC_NUM;
    case JV_TRUE:
        return JC_TRUE;
    case JV_FALSE:
        return JC_FALSE;
    default:
        return JC_NULL;
    }
}

static char class_char(uint8_t classes) {
    static const char chars[] = "{[\"0tfn";
    for (int i = 0; i < 7; i++) {
        if (classes & (1u << i)) {
            return chars[i];
        }
    }
    return '?';
}

/* "type": a name or an array of names -> classes; *integer when numbers must be integers. */
static bool parse_type(compiler *c, const js_value *v, uint8_t *classes, bool *integer) {
    static const struct {
        const char *name;
        uint8_t classes;
    } types[] = {{"object", JC_OBJ}, {"array", JC_ARR},   {"string", JC_STR},
                 {"number", JC_NUM}, {"integer", JC_NUM}, {"boolean", JC_TRUE | JC_FALSE},
                 {"null", JC_NULL}};
    size_t n = v->type == JV_ARRAY ? v->len : 1;
    bool has_number = false, has_integer = false;
    *classes = 0;
    if (v->type != JV_STRING && (v->type != JV_ARRAY || v->len == 0)) {
        fail(c, EDGELM_ERR_BAD_SCHEMA,
             "'type' at %s must be a type name or a non-empty array of them", ptr_text(c));
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const js_value *t = v->type == JV_ARRAY ? &v->items[i] : v;
        size_t k;
        if (t->type != JV_STRING) {
            fail(c, EDGELM_ERR_BAD_SCHEMA, "'type' at %s must hold type names", ptr_text(c));
            return false;
        }
        for (k = 0; k < sizeof types / sizeof types[0]; k++) {
            if (strcmp(t->str, types[k].name) == 0 && strlen(t->str) == t->len) {
                break;
            }
        }
        if (k == sizeof types / sizeof types[0]) {
            fail(c, EDGELM_ERR_BAD_SCHEMA, "unknown type '%.64s' at %s", t->str, ptr_text(c));
            return false;
        }
        *classes |= types[k].classes;
        has_number |= k == 3;
        has_integer |= k == 4;
    }
    *integer = has_integer && !has_number;
    return true;
}

/* A non-negative integer keyword value (minLength, ...). */
static bool parse_count(compiler *c, const js_value *v, const char *name, uint32_t *out) {
    uint64_t x = 0;
    bool ok = v->type == JV_NUMBER && v->len > 0 && v->len <= 10;
    for (size_t i = 0; ok && i < v->len; i++) {
        ok = v->str[i] >= '0' && v->str[i] <= '9';
        x = x * 10 + (uint64_t)(v->str[i] - '0');
    }
    if (!ok || x >= UINT32_MAX) {
        fail(c, EDGELM_ERR_BAD_SCHEMA, "'%s' at %s must be a non-negative integer below 2^32-1",
             name, ptr_text(c));
        return false;
    }
    *out = (uint32_t)x;
    return true;
}

static bool number_is_integer(const js_value *v) {
    return memchr(v->str, '.', v->len) == NULL && memchr(v->str, 'e', v->len) == NULL &&
           memchr(v->str, 'E', v->len) == NULL;
}

/* ---- minimal values ------------------------------------------------------------------------- */

static size_t min_len_of(const compiler *c, int32_t node) { return c->s->nodes[node].min_bytes; }

static bool text_reserve(compiler *c, size_t extra) { return byte_buffer_reserve(&c->text, extra); }

/* Copies bytes that live in the text buffer itself (capacity reserved by the caller). */
static void text_copy_self(compiler *c, uint32_t off, uint32_t len) {
    memmove(c->text.data + c->text.len, c->text.data + off, len);
    c->text.len += len;
    c->text.data[c->text.len] = '\0';
}

static void text_lit(compiler *c, const char *s, size_t n) {
    memcpy(c->text.data + c->text.len, s, n);
    c->text.len += n;
    c->text.data[c->text.len] = '\0';
}

/* Shortest value of a plain node: sizes of each class's minimum, then the winner is written. */
static bool set_min_plain(compiler *c, int32_t id) {
    const js_node *n = &c->s->nodes[id];
    const uint64_t none = UINT64_MAX;
    uint64_t best = none;
    uint8_t best_class = 0;
    uint8_t order[7] = {JC_NUM, JC_STR, JC_OBJ, JC_ARR, JC_NULL, JC_TRUE, JC_FALSE};
    for (int k = 0; k < 7; k++) {
        uint8_t cl = order[k];
        uint64_t len = none;
        if (!(n->classes & cl)) {
            continue;
        }
        switch (cl) {
        case JC_NUM:
            len = 1;
            break;
        case JC_STR:
            len = 2 + (uint64_t)n->min_len;
            break;
        case JC_NULL:
        case JC_TRUE:
            len = 4;
            break;
        case JC_FALSE:
            len = 5;
            break;
        case JC_OBJ:
            len = 2;
            for (uint32_t i = 0; n->listed && i < n->n_props; i++) {
                const js_prop *p = &c->s->props[n->prop_first + i];
                if (p->required) {
                    len += (uint64_t)(len > 2) + 1 + c->s->lits[n->key_lit + i].len + 1 +
                           min_len_of(c, p->node);
                }
            }
            break;
        case JC_ARR:
            len = 2 + (uint64_t)n->min_items * (min_len_of(c, n->items) + 1) - (n->min_items > 0);
            break;
        default:
            break;
        }
        if (len < best) {
            best = len;
            best_class = cl;
        }
    }
    if (best == none || best > JS_MIN_TEXT_MAX) {
        fail(c, EDGELM_ERR_BAD_SCHEMA,
             "the shortest value of the schema at %s is longer than %d bytes", ptr_text(c),
             JS_MIN_TEXT_MAX);
        return false;
    }
    if (!text_reserve(c, (size_t)best)) {
        oom(c);
        return false;
    }
    uint32_t off = (uint32_t)c->text.len;
    n = &c->s->nodes[id];
    switch (best_class) {
    case JC_NUM:
        text_lit(c, "0", 1);
        break;
    case JC_NULL:
        text_lit(c, "null", 4);
        break;
    case JC_TRUE:
        text_lit(c, "true", 4);
        break;
    case JC_FALSE:
        text_lit(c, "false", 5);
        break;
    case JC_STR:
        text_lit(c, "\"", 1);
        for (uint32_t i = 0; i < n->min_len; i++) {
            text_lit(c, "a", 1);
        }
        text_lit(c, "\"", 1);
        break;
    case JC_OBJ: {
        bool first = true;
        text_lit(c, "{", 1);
        for (uint32_t i = 0; n->listed && i < n->n_props; i++) {
            const js_prop *p = &c->s->props[n->prop_first + i];
            if (!p->required) {
                continue;
            }
            if (!first) {
                text_lit(c, ",", 1);
            }
            first = false;
            text_lit(c, "\"", 1);
            const js_lit *k = &c->s->lits[n->key_lit + i];
            text_copy_self(c, k->off, k->len);
            text_lit(c, ":", 1);
            const js_node *v = &c->s->nodes[p->node];
            text_copy_self(c, v->min_off, v->min_bytes);
        }
        text_lit(c, "}", 1);
        break;
    }
    case JC_ARR: {
        const js_node *it = &c->s->nodes[n->items];
        text_lit(c, "[", 1);
        for (uint32_t i = 0; i < n->min_items; i++) {
            if (i > 0) {
                text_lit(c, ",", 1);
            }
            text_copy_self(c, it->min_off, it->min_bytes);
        }
        text_lit(c, "]", 1);
        break;
    }
    default:
        break;
    }
    c->s->nodes[id].min_off = off;
    c->s->nodes[id].min_bytes = (uint32_t)(c->text.len - off);
    return true;
}

/* Shortest of a node's literals (enum) or alternatives (anyOf): shares their bytes. */
static void set_min_from_lits(compiler *c, int32_t id) {
    js_node *n = &c->s->nodes[id];
    uint32_t best = 0;
    for (uint32_t i = 1; i < n->n_lits; i++) {
        if (c->s->lits[n->lit_first + i].len < c->s->lits[n->lit_first + best].len) {
            best = i;
        }
    }
    n->min_off = c->s->lits[n->lit_first + best].off;
    n->min_bytes = c->s->lits[n->lit_first + best].len;
}

/* ---- compiling one schema ------------------------------------------------------------------ */

static int32_t compile_node(compiler *c, const js_value *v, bool is_root, int depth);

static int32_t compile_child(compiler *c, const js_value *v, const char *seg, size_t seg_len,
                             int depth) {
    size_t old = ptr_push(c, seg, seg_len);
    int32_t id = compile_node(c, v, false, depth + 1);
    ptr_pop(c, old);
    return id;
}

/* Could two enum texts denote the same JSON value? Equal texts, numbers of equal value (1 and
 * 1.0), and - conservatively - any two objects or any two arrays. */
static bool maybe_same_value(const char *a, size_t na, const char *b, size_t nb) {
    if (na == nb && memcmp(a, b, na) == 0) {
        return true;
    }
    if ((a[0] == '{' || a[0] == '[') && a[0] == b[0]) {
        return true;
    }
    bool num_a = a[0] == '-' || (a[0] >= '0' && a[0] <= '9');
    bool num_b = b[0] == '-' || (b[0] >= '0' && b[0] <= '9');
    if (!num_a || !num_b) {
        return false;
    }
    char x[64], y[64];
    if (na >= sizeof x || nb >= sizeof y) {
        return true;
    }
    memcpy(x, a, na);
    x[na] = '\0';
    memcpy(y, b, nb);
    y[nb] = '\0';
    return strtod(x, NULL) == strtod(y, NULL);
}

/* Enum/const alternatives (ids[k] with kind JN_ENUM) become one literal set, so alternatives
 * like {"const":"a"} and {"const":"b"} need not differ in their first character. For oneOf
 * their values must be provably distinct. Returns the merged node (or -1), and writes which
 * alternatives were merged into merged[] (1 each). */
static int32_t merge_enum_alternatives(compiler *c, const int32_t *ids, size_t n, bool one_of,
                                       uint8_t *merged) {
    const json_schema *s = c->s;
    byte_buffer all = {0};
    uint32_t *lens = NULL;
    size_t n_lits = 0, cap = 0;
    int32_t result = -1;
    for (size_t i = 0; i < n; i++) {
        const js_node *a = &s->nodes[ids[i]];
        merged[i] = a->kind == JN_ENUM;
        if (!merged[i]) {
            continue;
        }
        for (size_t j = 0; one_of && j < i; j++) {
            const js_node *b = &s->nodes[ids[j]];
            if (!merged[j]) {
                continue;
            }
            for (uint32_t x = 0; x < a->n_lits; x++) {
                for (uint32_t y = 0; y < b->n_lits; y++) {
                    const js_lit *la = &s->lits[a->lit_first + x];
                    const js_lit *lb = &s->lits[b->lit_first + y];
                    if (maybe_same_value(c->text.data + la->off, la->len, c->text.data + lb->off,
                                         lb->len)) {
                        fail(c, EDGELM_ERR_BAD_SCHEMA,
                             "oneOf alternatives %s/%zu and %s/%zu may both match the value "
                             "%.*s",
                             c->ptr, j, c->ptr, i, (int)(la->len < 64 ? la->len : 64),
                             c->text.data + la->off);
                        goto done;
                    }
                }
            }
        }
        cap += a->n_lits;
    }
    lens = malloc((cap ? cap : 1) * sizeof *lens);
    if (lens == NULL) {
        oom(c);
        goto done;
    }
    /* copy the texts out first: adding literals may move the text buffer */
    for (size_t i = 0; i < n; i++) {
        const js_node *a = &s->nodes[ids[i]];
        for (uint32_t x = 0; merged[i] && x < a->n_lits; x++) {
            const js_lit *l = &s->lits[a->lit_first + x];
            if (!byte_buffer_append(&all, c->text.data + l->off, l->len)) {
                oom(c);
                goto done;
            }
            lens[n_lits++] = l->len;
        }
    }
    int32_t id = new_node(c);
    if (id < 0) {
        goto done;
    }
    uint32_t first = c->s->n_lits;
    uint8_t classes = 0;
    size_t off = 0;
    for (size_t k = 0; k < n_lits; k++) {
        const char *t = all.data + off;
        if (add_lit(c, t, lens[k]) < 0) {
            goto done;
        }
        classes |= t[0] == '{'   ? JC_OBJ
                   : t[0] == '[' ? JC_ARR
                   : t[0] == '"' ? JC_STR
                   : t[0] == 't' ? JC_TRUE
                   : t[0] == 'f' ? JC_FALSE
                   : t[0] == 'n' ? JC_NULL
                                 : JC_NUM;
        off += lens[k];
    }
    js_node *m = &c->s->nodes[id];
    m->kind = JN_ENUM;
    m->classes = classes;
    m->sem = classes;
    m->lit_first = first;
    m->n_lits = (uint32_t)n_lits;
    set_min_from_lits(c, id);
    result = id;
done:
    free(all.data);
    free(lens);
    return result;
}

static int32_t compile_alternatives(compiler *c, const js_value *list, bool one_of, int depth) {
    const char *kw = one_of ? "oneOf" : "anyOf";
    if (list->type != JV_ARRAY || list->len == 0) {
        return fail(c, EDGELM_ERR_BAD_SCHEMA, "'%s' at %s must be a non-empty array of schemas", kw,
                    ptr_text(c));
    }
    size_t old = ptr_push(c, kw, strlen(kw));
    int32_t *ids = calloc(list->len, sizeof *ids);
    uint8_t *merged = NULL;
    size_t *where = NULL; /* original index of each remaining alternative (messages) */
    int32_t result = -1;
    if (ids == NULL) {
        oom(c);
        goto done;
    }
    for (size_t i = 0; i < list->len; i++) {
        size_t o2 = ptr_push_index(c, i);
        ids[i] = compile_node(c, &list->items[i], false, depth + 1);
        ptr_pop(c, o2);
        if (ids[i] < 0) {
            goto done;
        }
    }
    /* enum/const alternatives: one literal set standing where the first of them stood */
    size_t n = list->len, n_enum = 0;
    for (size_t i = 0; i < n; i++) {
        n_enum += c->s->nodes[ids[i]].kind == JN_ENUM;
    }
    if (n_enum >= 2) {
        merged = calloc(n, 1);
        where = calloc(n, sizeof *where);
        if (merged == NULL || where == NULL) {
            oom(c);
            goto done;
        }
        int32_t set = merge_enum_alternatives(c, ids, n, one_of, merged);
        if (set < 0) {
            goto done;
        }
        size_t k = 0;
        bool placed = false;
        for (size_t i = 0; i < n; i++) {
            if (!merged[i] || !placed) {
                ids[k] = merged[i] ? set : ids[i];
                where[k++] = i;
                placed |= merged[i];
            }
        }
        n = k;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            const js_node *a = &c->s->nodes[ids[i]];
            const js_node *b = &c->s->nodes[ids[j]];
            size_t wi = where ? where[i] : i, wj = where ? where[j] : j;
            if (i == j || (!one_of && j < i)) {
                continue;
            }
            uint8_t overlap =
                one_of ? (uint8_t)(a->classes & b->sem) : (uint8_t)(a->classes & b->classes);
            if (overlap) {
                if (one_of) {
                    fail(c, EDGELM_ERR_BAD_SCHEMA,
                         "oneOf alternatives %s/%zu and %s/%zu are not exclusive by type: a "
                         "value starting with '%c' made for the first may also match the "
                         "second (edgelm needs oneOf alternatives that differ in type or const)",
                         c->ptr, wi, c->ptr, wj, class_char(overlap));
                } else {
                    fail(c, EDGELM_ERR_BAD_SCHEMA,
                         "anyOf alternatives %s/%zu and %s/%zu can both start with '%c' (edgelm "
                         "tells alternatives apart by their first character: give them "
                         "different types or consts)",
                         c->ptr, wi, c->ptr, wj, class_char(overlap));
                }
                goto done;
            }
        }
    }
    if (n == 1) {
        result = ids[0];
        goto done;
    }
    json_schema *s = c->s;
    if (n > UINT32_MAX - s->n_alts ||
        !grow(&s->alts, &c->cap_alts, s->n_alts + (uint32_t)n, sizeof *s->alts)) {
        oom(c);
        goto done;
    }
    int32_t id = new_node(c);
    if (id < 0) {
        goto done;
    }
    js_node *node = &s->nodes[id];
    node->kind = JN_ANYOF;
    node->classes = 0;
    node->sem = 0;
    node->alt_first = s->n_alts;
    node->n_alts = (uint32_t)n;
    uint32_t best = 0;
    for (size_t i = 0; i < n; i++) {
        const js_node *a = &s->nodes[ids[i]];
        s->alts[s->n_alts++] = ids[i];
        node->classes |= a->classes;
        node->sem |= a->sem;
        if (a->min_bytes < s->nodes[ids[best]].min_bytes) {
            best = (uint32_t)i;
        }
    }
    node->min_off = s->nodes[ids[best]].min_off;
    node->min_bytes = s->nodes[ids[best]].min_bytes;
    result = id;
done:
    free(ids);
    free(merged);
    free(where);
    ptr_pop(c, old);
    return result;
}

static int32_t compile_enum(compiler *c, const js_value *kw[K_COUNT], uint8_t type_classes,
                            bool integer) {
    const js_value *e = kw[K_ENUM];
    const js_value *k = kw[K_CONST];
    byte_buffer tmp = {0}, want = {0};
    int32_t result = -1;
    if (e != NULL && (e->type != JV_ARRAY || e->len == 0)) {
        return fail(c, EDGELM_ERR_BAD_SCHEMA, "'enum' at %s must be a non-empty array",
                    ptr_text(c));
    }
    if (k != NULL && !jv_serialize(k, &want)) {
        oom(c);
        goto done;
    }
    int32_t id = new_node(c);
    if (id < 0) {
        goto done;
    }
    uint32_t first = c->s->n_lits, count = 0;
    uint8_t classes = 0;
    size_t n_values = e != NULL ? e->len : 1;
    for (size_t i = 0; i < n_values; i++) {
        const js_value *v = e != NULL ? &e->items[i] : k;
        uint8_t cl = class_of_value(v);
        if (!(type_classes & cl) || (cl == JC_NUM && integer && !number_is_integer(v))) {
            continue; /* can never validate: not generated */
        }
        tmp.len = 0;
        if (!jv_serialize(v, &tmp)) {
            oom(c);
            goto done;
        }
        if (k != NULL && (tmp.len != want.len || memcmp(tmp.data, want.data, tmp.len) != 0)) {
            continue;
        }
        if (add_lit(c, tmp.data, tmp.len) < 0) {
            goto done;
        }
        classes |= cl;
        count++;
    }
    if (count == 0) {
        fail(c, EDGELM_ERR_BAD_SCHEMA, "no value of '%s' at %s satisfies the other keywords",
             e != NULL ? "enum" : "const", ptr_text(c));
        goto done;
    }
    js_node *n = &c->s->nodes[id];
    n->kind = JN_ENUM;
    n->classes = classes;
    n->sem = classes;
    n->lit_first = first;
    n->n_lits = count;
    set_min_from_lits(c, id);
    result = id;
done:
    free(tmp.data);
    free(want.data);
    return result;
}

static int32_t compile_object_part(compiler *c, int32_t id, const js_value *kw[K_COUNT],
                                   int depth) {
    const js_value *props = kw[K_PROPERTIES];
    const js_value *req = kw[K_REQUIRED];
    const js_value *add = kw[K_ADDITIONAL];
    int32_t additional = 0;
    int32_t *prop_nodes = NULL;
    uint8_t *required = NULL;
    const char **names = NULL;
    size_t *name_lens = NULL;
    size_t n_props = 0;
    int32_t result = -1;
    byte_buffer key = {0};

    if (props != NULL && props->type != JV_OBJECT) {
        return fail(c, EDGELM_ERR_BAD_SCHEMA, "'properties' at %s must be an object", ptr_text(c));
    }
    if (req != NULL && req->type != JV_ARRAY) {
        return fail(c, EDGELM_ERR_BAD_SCHEMA, "'required' at %s must be an array of names",
                    ptr_text(c));
    }
    if (add != NULL) {
        if (add->type == JV_FALSE) {
            additional = -1;
        } else if (add->type != JV_TRUE) {
            /* With listed properties no extra key is generated, but the schema must still be
             * one edgelm understands. */
            additional = compile_child(c, add, "additionalProperties", 20, depth);
            if (additional < 0) {
                return -1;
            }
        }
    }
    size_t cap = (props ? props->len : 0) + (req ? req->len : 0);
    if (cap > 0) {
        prop_nodes = calloc(cap, sizeof *prop_nodes);
        required = calloc(cap, sizeof *required);
        names = calloc(cap, sizeof *names);
        name_lens = calloc(cap, sizeof *name_lens);
        if (prop_nodes == NULL || required == NULL || names == NULL || name_lens == NULL) {
            oom(c);
            goto done;
        }
    }
    for (size_t i = 0; props != NULL && i < props->len; i++) {
        size_t old = ptr_push(c, "properties", 10);
        prop_nodes[n_props] =
            compile_child(c, &props->items[i], props->keys[i], props->key_lens[i], depth);
        ptr_pop(c, old);
        if (prop_nodes[n_props] < 0) {
            goto done;
        }
        names[n_props] = props->keys[i];
        name_lens[n_props] = props->key_lens[i];
        n_props++;
    }
    for (size_t i = 0; req != NULL && i < req->len; i++) {
        const js_value *r = &req->items[i];
        size_t j;
        if (r->type != JV_STRING) {
            fail(c, EDGELM_ERR_BAD_SCHEMA, "'required' at %s must hold property names",
                 ptr_text(c));
            goto done;
        }
        for (j = 0; j < n_props; j++) {
            if (name_lens[j] == r->len && memcmp(names[j], r->str, r->len) == 0) {
                break;
            }
        }
        if (j < n_props) {
            if (required[j]) {
                fail(c, EDGELM_ERR_BAD_SCHEMA, "'required' at %s names '%.64s' twice", ptr_text(c),
                     r->str);
                goto done;
            }
            required[j] = 1;
            continue;
        }
        if (additional < 0) {
            fail(c, EDGELM_ERR_BAD_SCHEMA,
                 "required property '%.64s' at %s is not in 'properties' and "
                 "additionalProperties is false: no object can satisfy it",
                 r->str, ptr_text(c));
            goto done;
        }
        /* Required but not listed: generated after the listed ones, valued by
         * additionalProperties (any value when absent or true). */
        names[n_props] = r->str;
        name_lens[n_props] = r->len;
        prop_nodes[n_props] = additional;
        required[n_props] = 1;
        n_props++;
    }
    json_schema *s = c->s;
    js_node *n = &s->nodes[id];
    n->additional = additional;
    if (n_props == 0) {
        result = id; /* free keys (or none when additionalProperties is false) */
        goto done;
    }
    if (n_props > UINT32_MAX - s->n_props ||
        !grow(&s->props, &c->cap_props, s->n_props + (uint32_t)n_props, sizeof *s->props)) {
        oom(c);
        goto done;
    }
    uint32_t key_first = s->n_lits;
    for (size_t i = 0; i < n_props; i++) {
        key.len = 0;
        /* The key as generated: escaped content plus the closing quote (the opening quote is
         * read before matching starts). */
        if (!js_serialize_string(names[i], name_lens[i], &key)) {
            oom(c);
            goto done;
        }
        if (add_lit(c, key.data + 1, key.len - 1) < 0) {
            goto done;
        }
    }
    n = &s->nodes[id];
    n->listed = 1;
    n->prop_first = s->n_props;
    n->n_props = (uint32_t)n_props;
    n->key_lit = key_first;
    uint32_t next_req = (uint32_t)n_props;
    for (size_t i = n_props; i-- > 0;) {
        js_prop *p = &s->props[s->n_props + i];
        p->node = prop_nodes[i];
        p->required = required[i];
        if (required[i]) {
            next_req = (uint32_t)i;
        }
        p->req_next = next_req;
    }
    s->n_props += (uint32_t)n_props;
    result = id;
done:
    free(prop_nodes);
    free(required);
    free(names);
    free(name_lens);
    free(key.data);
    return result;
}

static int32_t compile_node(compiler *c, const js_value *v, bool is_root, int depth) {
    const js_value *kw[K_COUNT] = {0};
    if (depth > JS_PARSE_MAX_DEPTH) {
        return fail(c, EDGELM_ERR_BAD_SCHEMA, "schema nested too deeply at %s", ptr_text(c));
    }
    if (v->type == JV_TRUE) {
        if (!is_root) {
            return 0;
        }
        v = NULL; /* the root "true": like {} */
    } else if (v->type == JV_FALSE) {
        return fail(c, EDGELM_ERR_BAD_SCHEMA, "the schema false at %s accepts no value",
                    ptr_text(c));
    } else if (v->type != JV_OBJECT) {
        return fail(c, EDGELM_ERR_BAD_SCHEMA, "the schema at %s must be an object or a boolean",
                    ptr_text(c));
    }
    size_t n_members = v != NULL ? v->len : 0;
    const char *first_other = NULL; /* a validation keyword other than enum/const/anyOf/oneOf */
    const char *first_non_type = NULL;
    for (size_t i = 0; i < n_members; i++) {
        const char *name = v->keys[i];
        size_t k;
        bool ignored = false;
        for (k = 0; k < K_COUNT; k++) {
            if (strcmp(name, keyword_names[k]) == 0 && strlen(name) == v->key_lens[i]) {
                break;
            }
        }
        if (k < K_COUNT) {
            kw[k] = &v->items[i];
            if (k != K_ENUM && k != K_CONST && k != K_ANY_OF && k != K_ONE_OF) {
                if (first_other == NULL) {
                    first_other = keyword_names[k];
                }
                if (k != K_TYPE && first_non_type == NULL) {
                    first_non_type = keyword_names[k];
                }
            }
            continue;
        }
        for (size_t j = 0; j < sizeof ignored_names / sizeof ignored_names[0]; j++) {
            if (strcmp(name, ignored_names[j]) == 0 && strlen(name) == v->key_lens[i]) {
                ignored = true;
            }
        }
        if (!ignored) {
            size_t old = ptr_push(c, name, v->key_lens[i]);
            fail(c, EDGELM_ERR_BAD_SCHEMA, "unsupported keyword '%.64s' at %s", name, ptr_text(c));
            ptr_pop(c, old);
            return -1;
        }
    }

    if (kw[K_ANY_OF] != NULL || kw[K_ONE_OF] != NULL) {
        const char *alt = kw[K_ANY_OF] ? "anyOf" : "oneOf";
        if (kw[K_ANY_OF] != NULL && kw[K_ONE_OF] != NULL) {
            return fail(c, EDGELM_ERR_BAD_SCHEMA,
                        "'anyOf' and 'oneOf' together at %s are not supported", ptr_text(c));
        }
        const char *other = first_other   ? first_other
                            : kw[K_ENUM]  ? "enum"
                            : kw[K_CONST] ? "const"
                                          : NULL;
        if (other != NULL) {
            return fail(c, EDGELM_ERR_BAD_SCHEMA,
                        "'%s' combined with '%s' at %s is not supported (put the keyword in "
                        "every alternative)",
                        alt, other, ptr_text(c));
        }
        return compile_alternatives(c, kw[K_ANY_OF] ? kw[K_ANY_OF] : kw[K_ONE_OF],
                                    kw[K_ONE_OF] != NULL, depth);
    }

    uint8_t type_classes = JC_ALL;
    bool integer = false;
    if (kw[K_TYPE] != NULL) {
        size_t old = ptr_push(c, "type", 4);
        ptr_pop(c, old);
        if (!parse_type(c, kw[K_TYPE], &type_classes, &integer)) {
            return -1;
        }
    }
    if (kw[K_ENUM] != NULL || kw[K_CONST] != NULL) {
        if (first_non_type != NULL) {
            return fail(c, EDGELM_ERR_BAD_SCHEMA,
                        "'%s' combined with '%s' at %s is not supported (only 'type' may go "
                        "with enum/const)",
                        kw[K_ENUM] ? "enum" : "const", first_non_type, ptr_text(c));
        }
        return compile_enum(c, kw, type_classes, integer);
    }

    uint32_t min_items = 0, max_items = UINT32_MAX, min_len = 0, max_len = UINT32_MAX;
    if ((kw[K_MIN_ITEMS] && !parse_count(c, kw[K_MIN_ITEMS], "minItems", &min_items)) ||
        (kw[K_MAX_ITEMS] && !parse_count(c, kw[K_MAX_ITEMS], "maxItems", &max_items)) ||
        (kw[K_MIN_LENGTH] && !parse_count(c, kw[K_MIN_LENGTH], "minLength", &min_len)) ||
        (kw[K_MAX_LENGTH] && !parse_count(c, kw[K_MAX_LENGTH], "maxLength", &max_len))) {
        return -1;
    }
    if (min_items > max_items) {
        return fail(c, EDGELM_ERR_BAD_SCHEMA, "minItems > maxItems at %s", ptr_text(c));
    }
    if (min_len > max_len) {
        return fail(c, EDGELM_ERR_BAD_SCHEMA, "minLength > maxLength at %s", ptr_text(c));
    }
    uint8_t classes = type_classes;
    if (kw[K_TYPE] == NULL) {
        /* No type: generate what the keywords describe, anything when none (an object at
         * the top level). Every such value validates. */
        classes = 0;
        if (kw[K_PROPERTIES] || kw[K_REQUIRED] || kw[K_ADDITIONAL]) {
            classes |= JC_OBJ;
        }
        if (kw[K_ITEMS] || kw[K_MIN_ITEMS] || kw[K_MAX_ITEMS]) {
            classes |= JC_ARR;
        }
        if (kw[K_MIN_LENGTH] || kw[K_MAX_LENGTH]) {
            classes |= JC_STR;
        }
        if (classes == 0) {
            classes = is_root ? JC_OBJ : JC_ALL;
        }
    }
    int32_t items = 0;
    if (kw[K_ITEMS] != NULL) {
        if (kw[K_ITEMS]->type == JV_ARRAY) {
            size_t old = ptr_push(c, "items", 5);
            fail(c, EDGELM_ERR_BAD_SCHEMA,
                 "unsupported keyword 'items' as an array (tuple form) at %s", ptr_text(c));
            ptr_pop(c, old);
            return -1;
        }
        items = compile_child(c, kw[K_ITEMS], "items", 5, depth);
        if (items < 0) {
            return -1;
        }
    }
    int32_t id = new_node(c);
    if (id < 0) {
        return -1;
    }
    js_node *n = &c->s->nodes[id];
    n->kind = JN_PLAIN;
    n->classes = classes;
    n->sem = type_classes;
    n->integer = integer;
    n->items = items;
    n->min_items = min_items;
    n->max_items = max_items;
    n->min_len = min_len;
    n->max_len = max_len;
    if (compile_object_part(c, id, kw, depth) < 0) {
        return -1;
    }
    if (!set_min_plain(c, id)) {
        return -1;
    }
    return id;
}

void json_schema_free(json_schema *schema) {
    if (schema == NULL) {
        return;
    }
    free(schema->nodes);
    free(schema->props);
    free(schema->alts);
    free(schema->lits);
    free(schema->text);
    free(schema);
}

edgelm_status json_schema_compile(const char *text, size_t len, json_schema **out, char *err,
                                  size_t err_size) {
    char dummy[1];
    err = error_text_target(err, &err_size, dummy, sizeof dummy);
    if (out == NULL) {
        snprintf(err, err_size, "no output pointer");
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    js_value doc;
    edgelm_status st = jv_parse(text, len, &doc, err, err_size);
    if (st != EDGELM_OK) {
        return st;
    }
    compiler c;
    memset(&c, 0, sizeof c);
    c.err = err;
    c.err_size = err_size;
    c.s = calloc(1, sizeof *c.s);
    if (c.s == NULL) {
        oom(&c);
        goto fail;
    }
    /* nodes[0]: any value; its shortest value is 0. */
    int32_t any = new_node(&c);
    if (any < 0 || !text_reserve(&c, 1)) {
        oom(&c);
        goto fail;
    }
    c.s->nodes[0].min_off = (uint32_t)c.text.len;
    c.s->nodes[0].min_bytes = 1;
    text_lit(&c, "0", 1);
    c.s->root = compile_node(&c, &doc, true, 1);
    if (c.s->root < 0) {
        goto fail;
    }
    c.s->text = c.text.data;
    c.s->text_len = c.text.len;
    c.text.data = NULL;
    jv_free(&doc);
    *out = c.s;
    return EDGELM_OK;
fail:
    jv_free(&doc);
    free(c.text.data);
    json_schema_free(c.s);
    if (c.st == EDGELM_OK) {
        c.st = EDGELM_ERR_BAD_SCHEMA;
    }
    return c.st;
}
