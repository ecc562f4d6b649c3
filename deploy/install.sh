#!/usr/bin/env bash
# install.sh - make this machine (a Raspberry Pi or any Debian-like Linux with systemd) an edgelm
# node: build for this board (or take an already built tree), install edgelm and edgelmd, the
# configuration, the systemd unit, the stories260K model and a system user. Idempotent: a second
# run changes nothing that is already in place, and never overwrites an edited configuration.
# Not a package manager: --uninstall removes the fixed list of files below, nothing else.
#   sudo bash deploy/install.sh [--prefix DIR] [--from-build DIR] [--enable]
#   sudo bash deploy/install.sh --uninstall [--purge]
#   DESTDIR=/tmp/stage bash deploy/install.sh --from-build build     (packagers; no root needed)
set -euo pipefail

usage() {
    cat <<'EOF'
usage: deploy/install.sh [options]         install (as root, or with DESTDIR)
       deploy/install.sh --uninstall [--purge] [--prefix DIR]

Builds edgelm for this board (cmake Release, tuned for the CPU it runs on; the SIMD kernels are
picked at run time) and installs:
  PREFIX/bin/edgelm, PREFIX/bin/edgelmd      the CLI and the MQTT service
  /etc/edgelm/edgelm.conf                    configuration, model.path set to the model below
                                             (an edited one is kept: the new one is written
                                             next to it as edgelm.conf.new)
  UNITDIR/edgelmd.service                    systemd unit (PREFIX/lib/systemd/system for the
                                             prefixes /usr/local and /usr, else
                                             /etc/systemd/system)
  /var/lib/edgelm/models/stories260K.gguf    the default model (1.2 MB, MIT)
  system user and group 'edgelm'             the service runs as it

Options:
  --prefix DIR       where the programs go (default /usr/local)
  --from-build DIR   install the edgelm and edgelmd of an already built tree (a native or a
                     cross build, e.g. build-cross-aarch64) instead of building
  --build-dir DIR    where to build (default: build-install in the source tree)
  --no-deps          do not install missing Debian packages with apt-get
  --enable           also enable and start edgelmd (systemctl enable --now edgelmd)
  --uninstall        stop and disable edgelmd, remove the programs and the unit; keep the
                     configuration, the models and the user
  --purge            with --uninstall: also remove /etc/edgelm, /var/lib/edgelm (every model in
                     it) and the user edgelm
  -h, --help         this text

Environment:
  DESTDIR=DIR        stage everything under DIR (for packages): no root needed, no user is
                     created, no apt-get, no systemctl; ownership is left to the package
  CC, CFLAGS         compiler and extra flags for the build
EOF
}

say() { printf 'install: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# ---- arguments ----------------------------------------------------------------------------------
prefix=/usr/local
from_build=""
build_dir=""
deps=1
enable=0
mode=install
purge=0
while [ $# -gt 0 ]; do
    case $1 in
    --prefix | --from-build | --build-dir)
        if [ $# -lt 2 ] || [ -z "$2" ]; then
            say "$1 needs a value (see --help)"
            exit 2
        fi
        case $1 in
        --prefix) prefix=$2 ;;
        --from-build) from_build=$2 ;;
        --build-dir) build_dir=$2 ;;
        esac
        shift 2
        continue
        ;;
    --prefix=*) prefix=${1#*=} ;;
    --from-build=*) from_build=${1#*=} ;;
    --build-dir=*) build_dir=${1#*=} ;;
    --no-deps) deps=0 ;;
    --enable) enable=1 ;;
    --uninstall) mode=uninstall ;;
    --purge) purge=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        say "unknown argument '$1' (see --help)"
        exit 2
        ;;
    esac
    shift
done
if [ "$purge" -eq 1 ] && [ "$mode" != uninstall ]; then
    say "--purge goes with --uninstall (see --help)"
    exit 2
fi
case $prefix in
/*) prefix=${prefix%/} ;;
*) say "--prefix must be an absolute path, got '$prefix'"; exit 2 ;;
esac
[ -n "$prefix" ] || prefix=/ # --prefix / installs to /bin

destdir=${DESTDIR:-}
destdir=${destdir%/}
if [ -n "$destdir" ]; then
    case $destdir in
    /*) ;;
    *) destdir=$(pwd)/$destdir ;;
    esac
fi

root=$(cd "$(dirname "$0")/.." && pwd)
bindir=${prefix%/}/bin
confdir=/etc/edgelm
statedir=/var/lib/edgelm
modeldir=$statedir/models
model_name=stories260K.gguf
model_sha256=270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d
case $prefix in
/usr | /usr/local) unitdir=$prefix/lib/systemd/system ;; # both on systemd's unit path
*) unitdir=/etc/systemd/system ;;                         # systemd would not look elsewhere
esac
user=edgelm
programs=(edgelm edgelmd)

# Live system (no DESTDIR): root, and systemd when it is the init system.
live=1
[ -n "$destdir" ] && live=0
if [ "$live" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo bash deploy/install.sh ...), or set DESTDIR=DIR to stage the files"
fi
systemd_running=0
[ "$live" -eq 1 ] && [ -d /run/systemd/system ] && systemd_running=1

# ---- small helpers -------------------------------------------------------------------------------

# elf_id FILE: "CLASS MACHINE" bytes of an ELF header (e.g. "02 b7" for aarch64); empty if not ELF
elf_id() {
    [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] || return 0
    printf '%s %s\n' "$(od -An -t x1 -j 4 -N 1 "$1" | tr -d ' ')" \
        "$(od -An -t x1 -j 18 -N 1 "$1" | tr -d ' ')"
}
elf_name() {
    case $1 in
    "01 03") echo i386 ;; "02 3e") echo x86_64 ;; "01 28") echo "32-bit arm" ;;
    "02 b7") echo aarch64 ;; "02 f3") echo riscv64 ;; "01 f3") echo riscv32 ;;
    *) echo "ELF class/machine '$1'" ;;
    esac
}

# missing_packages PKG...: those not installed (dpkg); nothing without dpkg
missing_packages() {
    command -v dpkg-query >/dev/null 2>&1 || return 0
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}
# apt_install PKG...: install the missing ones (only as root on a live system, without --no-deps)
apt_install() {
    [ "$deps" -eq 1 ] && [ "$live" -eq 1 ] || return 0
    local missing
    missing=$(missing_packages "$@")
    [ -n "$missing" ] || return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "warning: not a Debian-like system; make sure these are installed: $*"
        return 0
    fi
    # shellcheck disable=SC2086 # one package per word
    say "installing Debian packages:" $missing
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || say "warning: apt-get update failed; trying the install anyway"
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
}

changed=0
# put SRC DEST MODE [GROUP]: install SRC as DEST (under DESTDIR) unless it is already there;
# written beside DEST and renamed, so a running program is never overwritten in place
put() {
    local src=$1 dest=$destdir$2 mode=$3 group=${4:-}
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
        chmod "$mode" "$dest"
        [ -z "$group" ] || chgrp "$group" "$dest"
        say "unchanged  $2"
        return 0
    fi
    mkdir -p "$(dirname "$dest")"
    cp "$src" "$dest.tmp.$$"
    chmod "$mode" "$dest.tmp.$$"
    [ -z "$group" ] || chgrp "$group" "$dest.tmp.$$"
    mv -f "$dest.tmp.$$" "$dest"
    say "installed  $2"
    changed=1
}
# dir PATH MODE: a directory (under DESTDIR) owned by the current user with MODE
dir() {
    if [ -d "$destdir$1" ]; then
        chmod "$2" "$destdir$1"
    else
        mkdir -p "$destdir$1"
        chmod "$2" "$destdir$1"
        say "created    $1/"
        changed=1
    fi
}
# remove PATH: delete a file (under DESTDIR) if it is there
remove() {
    if [ -e "$destdir$1" ] || [ -L "$destdir$1" ]; then
        rm -f "$destdir$1"
        say "removed    $1"
    fi
}

# ---- uninstall -----------------------------------------------------------------------------------
if [ "$mode" = uninstall ]; then
    if [ "$systemd_running" -eq 1 ] && systemctl cat edgelmd.service >/dev/null 2>&1; then
        systemctl disable --now edgelmd.service >/dev/null 2>&1 || true
        say "stopped and disabled edgelmd.service"
    fi
    for p in "${programs[@]}"; do
        remove "$bindir/$p"
    done
    remove "$unitdir/edgelmd.service"
    [ "$systemd_running" -eq 1 ] && systemctl daemon-reload
    if [ "$purge" -eq 1 ]; then
        for d in "$confdir" "$statedir"; do
            if [ -e "$destdir$d" ]; then
                rm -rf -- "$destdir${d:?}"
                say "removed    $d/ (all of it)"
            fi
        done
        if [ "$live" -eq 1 ] && getent passwd "$user" >/dev/null; then
            userdel "$user"
            say "removed    user $user"
        fi
        # userdel removes the user's own group; one left by hand-made accounts goes here
        if [ "$live" -eq 1 ] && getent group "$user" >/dev/null; then
            groupdel "$user" && say "removed    group $user"
        fi
        say "done: edgelm is uninstalled and purged"
    else
        say "done: programs and unit removed; kept $confdir/ (configuration), $statedir/ (models)" \
            "and the user $user (--uninstall --purge removes them too)"
    fi
    exit 0
fi

# ---- the programs: built here, or taken from a build tree ----------------------------------------
[ -f "$root/models/$model_name" ] ||
    die "$root/models/$model_name is missing: it is part of the repository (git checkout models/)"
if [ ! -f "$root/config/edgelm.conf" ] || [ ! -f "$root/deploy/systemd/edgelmd.service" ]; then
    die "run this script from an edgelm source tree (config/ and deploy/systemd/ are missing)"
fi

kernel_arch=$(uname -m)
if [ -z "$from_build" ]; then
    case $kernel_arch in
    x86_64 | i?86 | aarch64 | arm64 | armv7l | armv8l | riscv64) ;;
    armv6l) say "note: armv6 (Raspberry Pi 1 / Zero / Zero W): no NEON, so the scalar kernels" \
        "run (tested under qemu's ARM1176, the boards' core, not on a board)" ;;
    *) say "warning: '$kernel_arch' is not a board edgelm was tested on; building anyway" ;;
    esac
    apt_install build-essential cmake libpaho-mqtt-dev libcjson-dev libconfig-dev
    command -v cmake >/dev/null || die "cmake not found (apt-get install cmake, or drop --no-deps)"
    cc=${CC:-cc}
    command -v "$cc" >/dev/null || die "no C compiler '$cc' (apt-get install build-essential)"
    # Release build, scheduled for this CPU. -mtune changes no instruction set, so the binary runs
    # on every CPU of this architecture; the SIMD kernels (SSE2/AVX2/AVX-512, NEON) are compiled
    # per file and chosen at run time from the CPU's features. Not every compiler knows
    # -mtune=native (cross compilers, GCC 12 for RISC-V): then no flag.
    tune=""
    if printf 'int main(void){return 0;}\n' |
        "$cc" -mtune=native -x c -o /dev/null - 2>/dev/null; then
        tune="-mtune=native"
    fi
    cflags="${CFLAGS:-} $tune"
    cflags=${cflags# }
    build_dir=${build_dir:-$root/build-install}
    # Run via sudo from the user's own checkout: build as that user, so the tree stays theirs.
    as_user=()
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && command -v runuser >/dev/null &&
        [ "$(stat -c %U "$root" 2>/dev/null)" = "$SUDO_USER" ]; then
        as_user=(runuser -u "$SUDO_USER" --)
    fi
    # cc needs ~100-200 MB per job here: on a 512 MB board do not start more than memory allows
    jobs=$(nproc 2>/dev/null || echo 1)
    mem_kb=$(sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo 2>/dev/null || true)
    if [ -n "$mem_kb" ] && [ "$((mem_kb / 250000))" -lt "$jobs" ]; then
        jobs=$((mem_kb / 250000))
    fi
    [ "$jobs" -ge 1 ] || jobs=1
    # (the compiler's target, not uname -m, is what runs here: a Raspberry Pi OS with a 64-bit
    # kernel and a 32-bit userland says aarch64 and builds armhf programs)
    target=$("$cc" -dumpmachine 2>/dev/null || echo unknown)
    say "building on $kernel_arch for $target in $build_dir (Release, CFLAGS \"$cflags\"," \
        "$jobs jobs)"
    if ! configure_log=$("${as_user[@]}" cmake -S "$root" -B "$build_dir" \
        -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF "-DCMAKE_C_FLAGS=$cflags" 2>&1); then
        printf '%s\n' "$configure_log" | tail -n 20 >&2
        die "cmake could not configure the build in $build_dir (above)"
    fi
    "${as_user[@]}" cmake --build "$build_dir" -j "$jobs" --target edgelm-cli edgelmd ||
        die "the build failed (is libpaho-mqtt-dev libcjson-dev libconfig-dev installed?)"
    from_build=$build_dir
else
    apt_install libpaho-mqtt1.3 libcjson1 libconfig9
fi

[ -d "$from_build" ] || die "--from-build: '$from_build' is not a directory"
from_build=$(cd "$from_build" && pwd)
declare -A program_src
for p in "${programs[@]}"; do
    src=$from_build/$p
    # tools/cross-test wraps each target program in a qemu script and keeps the real one in .target/
    if [ -f "$src" ] && head -n 2 "$src" 2>/dev/null | grep -qx "# edgelm cross-test wrapper"; then
        src=$from_build/.target/$p
    fi
    if [ ! -f "$src" ]; then
        [ "$p" = edgelmd ] &&
            die "$from_build has no edgelmd: it was built without libpaho-mqtt-dev, libcjson-dev" \
                "or libconfig-dev (install them, for a cross build the target's, and build again)"
        die "$from_build has no $p: build it first (cmake --build $from_build)"
    fi
    id=$(elf_id "$src")
    [ -n "$id" ] || die "$src is not an ELF executable"
    # A live install must run here: compare with the userland's own /bin/sh (a 64-bit kernel can
    # run a 32-bit userland, so uname -m alone would not tell)
    host_id=$(elf_id /bin/sh)
    if [ "$id" != "$host_id" ]; then
        if [ "$live" -eq 1 ]; then
            die "$src is built for $(elf_name "$id"), this system runs $(elf_name "$host_id")" \
                "programs (stage it with DESTDIR=DIR instead)"
        fi
        say "note: $p is built for $(elf_name "$id"), not for this machine; staging it"
    fi
    program_src[$p]=$src
done

# ---- user ----------------------------------------------------------------------------------------
group=""
if [ "$live" -eq 1 ]; then
    if getent passwd "$user" >/dev/null; then
        say "unchanged  user $user"
    else
        nologin=/usr/sbin/nologin
        [ -x "$nologin" ] || nologin=/bin/false
        useradd --system --user-group --home-dir "$statedir" --no-create-home \
            --shell "$nologin" --comment "edgelm service" "$user"
        say "created    system user $user"
        changed=1
    fi
    group=$(id -gn "$user")
fi

# ---- files ---------------------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgelm-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

for p in "${programs[@]}"; do
    put "${program_src[$p]}" "$bindir/$p" 0755
done

# the unit, with this prefix's edgelmd
sed "s|/usr/local/bin/edgelmd|$bindir/edgelmd|g" "$root/deploy/systemd/edgelmd.service" \
    >"$tmp/edgelmd.service"
put "$tmp/edgelmd.service" "$unitdir/edgelmd.service" 0644

# the model, checked against its known sha256 first
if command -v sha256sum >/dev/null; then
    got=$(sha256sum "$root/models/$model_name" | cut -d' ' -f1)
    [ "$got" = "$model_sha256" ] ||
        die "$root/models/$model_name has sha256 $got, expected $model_sha256 (damaged checkout?)"
fi
dir "$statedir" 0755
dir "$modeldir" 0755
put "$root/models/$model_name" "$modeldir/$model_name" 0644

# the configuration: the shipped file with model.path set; readable by the service's group only
# (it may hold the broker's password)
awk -v path="$modeldir/$model_name" '
    /^model = \{/ { in_model = 1 }
    in_model && /^  path = "";/ { sub(/"";/, "\"" path "\";"); done = 1; in_model = 0 }
    { print }
    END { if (!done) exit 1 }' "$root/config/edgelm.conf" >"$tmp/edgelm.conf" ||
    die "config/edgelm.conf has no 'path = \"\";' line in its model block to set"
dir "$confdir" 0755
conf=$confdir/edgelm.conf
if [ -f "$destdir$conf" ] && ! cmp -s "$tmp/edgelm.conf" "$destdir$conf"; then
    put "$tmp/edgelm.conf" "$conf.new" 0640 "$group"
    say "kept       $conf (yours differs from the new default: compare it with $conf.new)"
else
    put "$tmp/edgelm.conf" "$conf" 0640 "$group"
fi

# ---- systemd and a check -------------------------------------------------------------------------
if [ "$live" -eq 1 ]; then
    # the service user must be able to read the configuration and load the model
    if command -v runuser >/dev/null && ! runuser -u "$user" -- "$bindir/edgelmd" \
        --config "$conf" --check-config >"$tmp/check" 2>&1; then
        sed 's/^/    /' "$tmp/check" >&2
        say "warning: 'edgelmd --config $conf --check-config' failed as user $user (above)"
    fi
    if [ "$systemd_running" -eq 1 ]; then
        systemctl daemon-reload
        if [ "$enable" -eq 1 ]; then
            systemctl enable --now edgelmd.service
            say "enabled and started edgelmd.service"
        elif [ "$changed" -eq 1 ] && systemctl -q is-active edgelmd.service; then
            systemctl restart edgelmd.service
            say "restarted edgelmd.service (it was running)"
        fi
    else
        say "note: systemd is not running here; start edgelmd yourself or on the next boot"
        [ "$enable" -eq 1 ] && say "warning: --enable ignored (no systemd)"
    fi
fi

if [ -n "$destdir" ]; then
    say "done: staged under $destdir (create the user '$user' and 'chgrp $user $conf' in the" \
        "package's postinst)"
else
    say "done. Next:"
    say "  1. edit $conf: mqtt.broker (and credentials or TLS), node.id, model.path"
    say "  2. check it:  $bindir/edgelmd --config $conf --check-config"
    if [ "$enable" -eq 1 ]; then
        say "  3. follow it: journalctl -u edgelmd -f (after edits: systemctl restart edgelmd)"
    else
        say "  3. start it:  systemctl enable --now edgelmd; journalctl -u edgelmd -f"
    fi
    say "  try the model: $bindir/edgelm $modeldir/$model_name -p 'Once upon a time' -n 32"
fi
