# Cross-compile edgelm for 64-bit RISC-V Linux (RV64GC, lp64d: LicheeRV, VisionFive 2; scalar
# kernels) with Debian's gcc-riscv64-linux-gnu:
#   cmake -S . -B build-riscv64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/riscv64-linux-gnu.cmake \
#         -DEDGELM_SYSROOT=DIR        # the target's libraries: see linux-gnu.cmake
# Debian 12 has no riscv64 port: tools/cross-test takes Debian 13's packages, libc included.
set(EDGELM_TRIPLE riscv64-linux-gnu)
set(CMAKE_SYSTEM_PROCESSOR riscv64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-gnu.cmake)
