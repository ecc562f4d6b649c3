# Cross-compile edgelm for 32-bit ARMv7 Linux with hard float (Debian armhf; Raspberry Pi 2, 3, 4
# and Zero 2 W with a 32-bit OS; NEON kernels when the CPU has NEON) with Debian's
# gcc-arm-linux-gnueabihf. Not for ARMv6 boards (Pi 1, Zero, Zero W): armv6-linux-gnueabi.cmake.
#   cmake -S . -B build-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/arm-linux-gnueabihf.cmake \
#         -DEDGELM_SYSROOT=DIR        # the target's libraries: see linux-gnu.cmake
set(EDGELM_TRIPLE arm-linux-gnueabihf)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
include(${CMAKE_CURRENT_LIST_DIR}/linux-gnu.cmake)
