# Shared part of the cross toolchain files beside it (each sets EDGELM_TRIPLE and
# CMAKE_SYSTEM_PROCESSOR, then includes this): Debian's cross gcc, <triple>-gcc, and the
# target's libraries (libc, and for edgelmd and the tests Paho MQTT C, cJSON, libconfig) from
#  - a sysroot, -DEDGELM_SYSROOT=DIR (absolute): the board's / copied over, or the target's Debian
#    packages unpacked into DIR (tools/cross-test makes one in build-cross-ARCH/sysroot; a copy
#    needs its absolute symlinks, such as usr/lib/<triple>/libm.so, made relative as it does); or
#  - without it, Debian's cross libc (libc6-dev-<arch>-cross) plus multiarch -dev packages of
#    this machine (dpkg --add-architecture arm64; apt-get install libpaho-mqtt-dev:arm64 ...).
# Without Paho, cJSON and libconfig for the target only the engine, the CLI and the tools build.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${EDGELM_TRIPLE}-gcc)
# toolchain files run again for every try_compile, which sees only the variables listed here
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES EDGELM_SYSROOT)

if(EDGELM_SYSROOT)
  set(CMAKE_SYSROOT ${EDGELM_SYSROOT})
  set(CMAKE_FIND_ROOT_PATH ${EDGELM_SYSROOT})
  # Debian's cross gcc searches its own /usr/<triple>/lib (libc6-dev-<arch>-cross, when
  # installed) before the sysroot: -L puts the sysroot's libc first, which matters when it is
  # newer (riscv64: Debian 13's, which Paho needs). -rpath-link: where the linker finds the
  # libraries' own dependencies (libssl for Paho). (Set, not appended to: CMake reads this file
  # more than once.)
  set(edgelm_lib ${EDGELM_SYSROOT}/usr/lib/${EDGELM_TRIPLE})
  set(edgelm_base_lib ${EDGELM_SYSROOT}/lib/${EDGELM_TRIPLE})
  set(CMAKE_EXE_LINKER_FLAGS_INIT
      "-L${edgelm_lib} -L${edgelm_base_lib} -Wl,-rpath-link,${edgelm_lib}:${edgelm_base_lib}")
else()
  set(CMAKE_FIND_ROOT_PATH /usr/${EDGELM_TRIPLE} /)
  set(CMAKE_LIBRARY_ARCHITECTURE ${EDGELM_TRIPLE})
endif()
# programs (the host's) from the host; libraries, headers and packages only for the target
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
