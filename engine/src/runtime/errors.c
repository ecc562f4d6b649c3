/* errors.c - the static text of every edgelm_status and the library version. */
#include "edgelm.h"

#ifndef EDGELM_VERSION
#define EDGELM_VERSION "0.0.0"
#endif

const char *edgelm_strerror(edgelm_status status) {
    switch (status) {
    case EDGELM_OK: return "ok";
    case EDGELM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case EDGELM_ERR_IO: return "input/output error";
    case EDGELM_ERR_OUT_OF_MEMORY: return "out of memory";
    case EDGELM_ERR_BAD_MAGIC: return "not a GGUF file";
    case EDGELM_ERR_UNSUPPORTED_VERSION: return "unsupported GGUF version";
    case EDGELM_ERR_TRUNCATED: return "truncated file";
    case EDGELM_ERR_BAD_VALUE_TYPE: return "bad metadata value type";
    case EDGELM_ERR_BAD_TENSOR_TYPE: return "unsupported tensor type";
    case EDGELM_ERR_BAD_DIMENSIONS: return "bad tensor dimensions";
    case EDGELM_ERR_TENSOR_OUT_OF_BOUNDS: return "tensor data out of bounds";
    case EDGELM_ERR_TOO_LARGE: return "count or length too large";
    case EDGELM_ERR_BAD_ALIGNMENT: return "bad alignment";
    case EDGELM_ERR_DUPLICATE: return "duplicate name";
    case EDGELM_ERR_MISSING: return "missing metadata or tensor";
    case EDGELM_ERR_UNSUPPORTED_ARCH: return "unsupported architecture";
    case EDGELM_ERR_BAD_SHAPE: return "tensor shape does not match the architecture";
    case EDGELM_ERR_TOKENIZER: return "bad tokenizer data";
    case EDGELM_ERR_CONTEXT_FULL: return "context full";
    case EDGELM_ERR_CANCELLED: return "cancelled";
    case EDGELM_ERR_THREAD: return "cannot create thread";
    case EDGELM_ERR_BAD_TOKEN: return "token id out of range";
    case EDGELM_ERR_BAD_STRING: return "bad string";
    case EDGELM_ERR_BAD_SCHEMA: return "unsupported or invalid JSON Schema";
    case EDGELM_ERR_STATE_MISMATCH: return "saved state does not match this model or layout";
    case EDGELM_ERR_CORRUPT: return "saved state is corrupt";
    }
    return "unknown error";
}

const char *edgelm_version(void) {
    return EDGELM_VERSION;
}
