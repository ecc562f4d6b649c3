/* fuzz_target.h - the two entry points every tests/fuzz/fuzz_<surface>.c defines, with the
 * signatures libFuzzer calls (-fsanitize=fuzzer) and fuzz_replay_main.c calls in ordinary builds.
 * Also where the fixed inputs of the targets live (the tiny model most of them load).
 */
#ifndef EDGELM_FUZZ_TARGET_H
#define EDGELM_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

/* One-time setup (load a model, open scratch files); returns 0. Called once before any input. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
/* Run one input; returns 0 (libFuzzer reserves other values). Must not crash, leak or hang on any
 * bytes: a failed check inside calls abort() so both libFuzzer and the replay report it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* <build>/tests/fuzz/data/tiny.gguf, made by edgelm-gen (tests/fuzz/CMakeLists.txt; the directory
 * is baked in as EDGELM_FUZZ_DATA_DIR); EDGELM_FUZZ_DATA overrides it, for moved binaries. */
#define FUZZ_TINY_MODEL "tiny.gguf"

#endif /* EDGELM_FUZZ_TARGET_H */
