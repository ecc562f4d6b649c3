# Cross-compile edgelm for ARMv6 with VFP and no NEON (BCM2835: Raspberry Pi 1, Zero, Zero W)
# with Debian's gcc-arm-linux-gnueabi (armel), for a static CLI that runs on any OS of these
# boards, Raspberry Pi OS included:
#   cmake -S . -B build-armv6 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/armv6-linux-gnueabi.cmake \
#         -DEDGELM_STATIC=ON [-DEDGELM_SYSROOT=DIR]
# Not the armhf compiler: its libc and libgcc are ARMv7 Thumb-2 code, which an ARMv6 core cannot
# run; armel's are ARMv5TE. Its soft-float calling convention (VFP instructions, floats passed
# in integer registers: -mfloat-abi=softfp) cannot link with Raspberry Pi OS's hard-float
# libraries, hence static. Other programs that link the OS's libraries (edgelmd) would be
# built on the board itself.
set(EDGELM_TRIPLE arm-linux-gnueabi)
set(CMAKE_SYSTEM_PROCESSOR armv6l)
set(CMAKE_C_FLAGS_INIT "-march=armv6 -mfpu=vfp -mfloat-abi=softfp -marm")
include(${CMAKE_CURRENT_LIST_DIR}/linux-gnu.cmake)
