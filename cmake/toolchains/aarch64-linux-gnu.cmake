# Cross-compile edgelm for 64-bit ARM Linux (Raspberry Pi 3, 4, 5 and Zero 2 W with a 64-bit
# OS; NEON kernels) with Debian's gcc-aarch64-linux-gnu:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DEDGELM_SYSROOT=DIR        # the target's libraries: see linux-gnu.cmake
set(EDGELM_TRIPLE aarch64-linux-gnu)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-gnu.cmake)
