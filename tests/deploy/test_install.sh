#!/usr/bin/env bash
# test_install.sh - deploy/install.sh end to end, staged in temporary DESTDIRs (never the live
# system): --from-build of this build tree, the installed tree (files, modes, the unit's and the
# configuration's paths), a second run that changes nothing, an edited configuration kept (the new
# one beside it as .new), other prefixes, cross-build wrappers, --uninstall and --purge; the
# installed edgelm generating 5 tokens from the installed model, the installed edgelmd checking the
# installed configuration, and `systemd-analyze verify` of the installed unit (skipped loudly
# without systemd-analyze). Usage: bash test_install.sh SOURCE_DIR BUILD_DIR
# Exit 0 all passed, 1 a check failed, 77 nothing failed but a part was skipped (said loudly).
set -u

if [ $# -ne 2 ]; then
    echo "usage: bash test_install.sh SOURCE_DIR BUILD_DIR" >&2
    exit 2
fi
src=$(cd "$1" && pwd) || exit 1
build=$(cd "$2" && pwd) || exit 1
install_sh=$src/deploy/install.sh

checks=0
failures=0
skips=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgelm_install_test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

pass() { checks=$((checks + 1)); }
fail() {
    checks=$((checks + 1))
    failures=$((failures + 1))
    echo "FAIL: $*" >&2
    if [ -s "$tmp/err" ]; then
        sed 's/^/    output: /' "$tmp/err" | tail -n 8 >&2
    fi
}
skip() {
    skips=$((skips + 1))
    echo "*** SKIPPED: $*" >&2
}
check() { # check DESCRIPTION CMD...: one check that CMD succeeds
    local what=$1
    shift
    if "$@"; then pass; else fail "$what"; fi
}

# inst DESTDIR ARGS...: run install.sh staged in DESTDIR (never on this machine); rc, output in
# $tmp/err (stdout and stderr: the script talks on stderr)
inst() {
    local d=$1
    shift
    DESTDIR=$d bash "$install_sh" "$@" </dev/null >"$tmp/err" 2>&1
    rc=$?
}
expect_rc() { # expect_rc WANT DESCRIPTION
    if [ "$rc" -eq "$1" ]; then pass; else fail "$2: exit $rc, expected $1"; fi
}
said() { # said TEXT DESCRIPTION: the last run's output contains TEXT
    if grep -q -F -e "$1" "$tmp/err"; then pass; else fail "$2: output does not say '$1'"; fi
}
mode_of() { stat -c %a "$1" 2>/dev/null; }
# snapshot DIR: every entry's type, mode and path, and every file's sha256 (for "nothing changed")
snapshot() {
    (cd "$1" && find . -printf '%y %m %p\n' | LC_ALL=C sort &&
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

[ -f "$install_sh" ] || { echo "FAIL: $install_sh is missing" >&2; exit 1; }
[ -x "$build/edgelm" ] || { echo "FAIL: $build/edgelm is not built" >&2; exit 1; }
if [ ! -x "$build/edgelmd" ]; then
    skip "$build/edgelmd was not built (libpaho-mqtt-dev, libcjson-dev, libconfig-dev missing):" \
        "install.sh needs it; nothing was checked"
    exit 77
fi

# ---- usage ---------------------------------------------------------------------------------------

bash "$install_sh" --help >"$tmp/err" 2>&1
rc=$?
expect_rc 0 "--help"
for word in --prefix --from-build --uninstall --purge --enable --no-deps DESTDIR \
    /etc/edgelm/edgelm.conf /var/lib/edgelm/models edgelm.conf.new lib/systemd/system; do
    said "$word" "--help"
done
for args in "--bogus" "--purge" "--prefix" "--prefix relative/dir"; do
    # shellcheck disable=SC2086 # split on purpose
    inst "$tmp/never" $args
    expect_rc 2 "install.sh $args"
done
check "usage errors wrote nothing" test ! -e "$tmp/never"
inst "$tmp/never" --from-build "$tmp/no-such-build"
expect_rc 1 "--from-build of a missing directory"
said "$tmp/no-such-build" "--from-build of a missing directory"
mkdir -p "$tmp/half-build"
cp "$build/edgelm" "$tmp/half-build/"
inst "$tmp/never" --from-build "$tmp/half-build"
expect_rc 1 "--from-build of a tree without edgelmd"
said "libpaho-mqtt-dev" "--from-build of a tree without edgelmd"
if [ "$(id -u)" -eq 0 ] && command -v runuser >/dev/null && id nobody >/dev/null 2>&1; then
    # without DESTDIR a non-root user is refused before anything happens
    runuser -u nobody -- env -u DESTDIR bash "$install_sh" --from-build "$build" </dev/null \
        >"$tmp/err" 2>&1
    rc=$?
    expect_rc 1 "a live install as a non-root user"
    said "run as root" "a live install as a non-root user"
fi

# ---- install, check the tree ---------------------------------------------------------------------

d=$tmp/root
inst "$d" --from-build "$build"
expect_rc 0 "install into DESTDIR"
cp "$tmp/err" "$tmp/first.log"

want_files="./etc/edgelm/edgelm.conf 640
./usr/local/bin/edgelm 755
./usr/local/bin/edgelmd 755
./usr/local/lib/systemd/system/edgelmd.service 644
./var/lib/edgelm/models/stories260K.gguf 644"
got_files=$(cd "$d" 2>/dev/null && find . -type f -printf '%p %m\n' | LC_ALL=C sort)
if [ "$got_files" = "$want_files" ]; then pass; else
    fail "installed files and modes:" "$got_files" "expected:" "$want_files"
fi
for sub in etc/edgelm var/lib/edgelm var/lib/edgelm/models; do
    if [ -d "$d/$sub" ] && [ "$(mode_of "$d/$sub")" = 755 ]; then pass; else
        fail "$sub: not a directory with mode 755 ($(mode_of "$d/$sub"))"
    fi
done
for p in edgelm edgelmd; do
    check "installed $p differs from $build/$p" cmp -s "$build/$p" "$d/usr/local/bin/$p"
done
check "the installed model is not models/stories260K.gguf" \
    cmp -s "$src/models/stories260K.gguf" "$d/var/lib/edgelm/models/stories260K.gguf"
if command -v sha256sum >/dev/null; then
    sum=$(sha256sum "$d/var/lib/edgelm/models/stories260K.gguf" | cut -d' ' -f1)
    want_sum=270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d
    if [ "$sum" = "$want_sum" ]; then pass; else fail "installed model sha256 $sum"; fi
fi

# the unit: the paths on the target system, nothing of DESTDIR or the build tree
unit=$d/usr/local/lib/systemd/system/edgelmd.service
for line in "ExecStart=/usr/local/bin/edgelmd --config /etc/edgelm/edgelm.conf" "User=edgelm" \
    "Group=edgelm" "Type=simple" "ReadOnlyPaths=/var/lib/edgelm/models" "ProtectSystem=strict" \
    "ProtectHome=yes" "NoNewPrivileges=yes" "PrivateTmp=yes" "Restart=on-failure" \
    "ExecReload=/bin/kill -HUP \$MAINPID" "WantedBy=multi-user.target"; do
    if grep -q -x -F -e "$line" "$unit"; then pass; else fail "the unit has no line '$line'"; fi
done
check "the unit has a commented MemoryMax= example" grep -q '^#MemoryMax=' "$unit"
for f in "$unit" "$d/etc/edgelm/edgelm.conf"; do
    if grep -q -F -e "$tmp" -e "$build" -e "$src" "$f"; then
        fail "$f names DESTDIR, the build or the source tree:" \
            "$(grep -F -e "$tmp" -e "$build" -e "$src" "$f" | head -n 1)"
    else
        pass
    fi
done

# the configuration: the shipped one with model.path set to the installed model, and nothing else
diff "$src/config/edgelm.conf" "$d/etc/edgelm/edgelm.conf" >"$tmp/conf.diff"
if [ "$(grep -c '^[<>]' "$tmp/conf.diff")" -eq 2 ] &&
    grep -q -x -F '>   path = "/var/lib/edgelm/models/stories260K.gguf";' "$tmp/conf.diff" &&
    grep -q -x -F '<   path = "";' "$tmp/conf.diff"; then
    pass
else
    fail "installed configuration differs from config/edgelm.conf by more than model.path:" \
        "$(head -n 10 "$tmp/conf.diff")"
fi
# ... which the installed edgelmd accepts (the model path pointed into DESTDIR)
"$d/usr/local/bin/edgelmd" --config "$d/etc/edgelm/edgelm.conf" --check-config \
    --model "$d/var/lib/edgelm/models/stories260K.gguf" </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
expect_rc 0 "installed edgelmd --check-config on the installed configuration"

# the installed programs run: --help, and 5 greedy tokens from the installed model
"$d/usr/local/bin/edgelm" --help </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
expect_rc 0 "installed edgelm --help"
"$d/usr/local/bin/edgelm" "$d/var/lib/edgelm/models/stories260K.gguf" -p "Once upon a time" \
    -n 5 -t 0 </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = ", there was a little" ] &&
    grep -q '^edgelm: generated: 5 tokens' "$tmp/err"; then
    pass
else
    fail "installed edgelm, 5 greedy tokens: exit $rc, '$(cat "$tmp/out")'," \
        "expected ', there was a little' (llama.cpp's)"
fi

# systemd's own check of the unit, with ExecStart pointed at the staged binary
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$tmp/verify"
    sed "s|^ExecStart=/usr/local/bin/edgelmd|ExecStart=$d/usr/local/bin/edgelmd|" "$unit" \
        >"$tmp/verify/edgelmd.service"
    (cd "$tmp/verify" && systemd-analyze verify --man=no ./edgelmd.service) >"$tmp/err" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$tmp/err" ]; then pass; else
        fail "systemd-analyze verify edgelmd.service: exit $rc, or it warned"
    fi
else
    skip "systemd-analyze not found (apt-get install systemd): the unit was not verified"
fi

# ---- idempotent ----------------------------------------------------------------------------------

snapshot "$d" >"$tmp/snap1"
inst "$d" --from-build "$build"
expect_rc 0 "second install"
snapshot "$d" >"$tmp/snap2"
if cmp -s "$tmp/snap1" "$tmp/snap2"; then pass; else
    fail "the second install changed the tree: $(diff "$tmp/snap1" "$tmp/snap2" | head -n 6)"
fi
if grep -q -E '^install: (installed|created)' "$tmp/err"; then
    fail "the second install says it installed or created something"
else
    pass
fi
said "unchanged  /etc/edgelm/edgelm.conf" "second install"

# an edited configuration is kept; the new default goes beside it as .new, once
conf=$d/etc/edgelm/edgelm.conf
cp "$conf" "$tmp/pristine.conf"
printf '# edited by hand\n' >>"$conf"
cp "$conf" "$tmp/edited.conf"
inst "$d" --from-build "$build"
expect_rc 0 "install over an edited configuration"
check "the edited configuration was overwritten" cmp -s "$conf" "$tmp/edited.conf"
check "edgelm.conf.new is not the new default" cmp -s "$conf.new" "$tmp/pristine.conf"
if [ "$(mode_of "$conf.new")" = 640 ]; then pass; else
    fail "edgelm.conf.new mode $(mode_of "$conf.new")"
fi
said "edgelm.conf.new" "install over an edited configuration"
snapshot "$d" >"$tmp/snap3"
inst "$d" --from-build "$build"
expect_rc 0 "install again over an edited configuration"
snapshot "$d" >"$tmp/snap4"
check "installing again over an edited configuration changed the tree" \
    cmp -s "$tmp/snap3" "$tmp/snap4"

# ---- uninstall, purge ----------------------------------------------------------------------------

inst "$d" --uninstall
expect_rc 0 "--uninstall"
for f in usr/local/bin/edgelm usr/local/bin/edgelmd usr/local/lib/systemd/system/edgelmd.service; do
    check "--uninstall left $f" test ! -e "$d/$f"
done
for f in etc/edgelm/edgelm.conf etc/edgelm/edgelm.conf.new \
    var/lib/edgelm/models/stories260K.gguf; do
    check "--uninstall removed $f (kept without --purge)" test -f "$d/$f"
done
said "--purge" "--uninstall (how to remove the rest)"
inst "$d" --uninstall
expect_rc 0 "--uninstall a second time"
inst "$d" --uninstall --purge
expect_rc 0 "--uninstall --purge"
for f in etc/edgelm var/lib/edgelm; do
    check "--purge left $f" test ! -e "$d/$f"
done
left=$(find "$d" ! -type d 2>/dev/null)
if [ -z "$left" ]; then pass; else fail "files left after --purge: $left"; fi

# ---- other prefixes ------------------------------------------------------------------------------

inst "$tmp/usr" --from-build "$build" --prefix /usr
expect_rc 0 "--prefix /usr"
check "--prefix /usr: no usr/bin/edgelmd" test -x "$tmp/usr/usr/bin/edgelmd"
check "--prefix /usr: the unit is not in usr/lib/systemd/system or names another ExecStart" \
    grep -q -x -F "ExecStart=/usr/bin/edgelmd --config /etc/edgelm/edgelm.conf" \
    "$tmp/usr/usr/lib/systemd/system/edgelmd.service"
inst "$tmp/opt" --from-build "$build" --prefix /opt/edgelm/
expect_rc 0 "--prefix /opt/edgelm/"
check "--prefix /opt/edgelm: no opt/edgelm/bin/edgelm" test -x "$tmp/opt/opt/edgelm/bin/edgelm"
check "--prefix /opt/edgelm: the unit is not in etc/systemd/system or names another ExecStart" \
    grep -q -x -F "ExecStart=/opt/edgelm/bin/edgelmd --config /etc/edgelm/edgelm.conf" \
    "$tmp/opt/etc/systemd/system/edgelmd.service"
inst "$tmp/opt" --uninstall --purge --prefix /opt/edgelm
expect_rc 0 "--uninstall --purge --prefix /opt/edgelm"
left=$(find "$tmp/opt" ! -type d 2>/dev/null)
if [ -z "$left" ]; then pass; else fail "files left after --purge --prefix /opt/edgelm: $left"; fi

# ---- build trees made by tools/cross-test: wrapper scripts, the real programs in .target/ --------

fake=$tmp/cross-build
mkdir -p "$fake/.target"
for p in edgelm edgelmd; do
    printf '#!/bin/sh\n# edgelm cross-test wrapper\nexec qemu "%s" "$@"\n' "$fake/.target/$p" \
        >"$fake/$p"
    chmod +x "$fake/$p"
done
cp "$build/edgelm" "$fake/.target/edgelm"
# edgelmd "built for another machine": the ELF header's machine byte changed (x86-64 <-> aarch64)
cp "$build/edgelmd" "$fake/.target/edgelmd"
machine=$(od -An -t x1 -j 18 -N 1 "$build/edgelmd" | tr -d ' ')
if [ "$machine" = b7 ]; then other='\076'; else other='\267'; fi
# shellcheck disable=SC2059 # the format is the octal byte
printf "$other" | dd of="$fake/.target/edgelmd" bs=1 seek=18 conv=notrunc status=none
inst "$tmp/cross" --from-build "$fake"
expect_rc 0 "--from-build of a cross-test tree, staged"
check "the wrapper script was installed instead of .target/edgelm" \
    cmp -s "$build/edgelm" "$tmp/cross/usr/local/bin/edgelm"
check "the wrapper script was installed instead of .target/edgelmd" \
    cmp -s "$fake/.target/edgelmd" "$tmp/cross/usr/local/bin/edgelmd"
said "edgelmd is built for" "staging a program for another machine"

# ---- summary -------------------------------------------------------------------------------------

echo "test_install: $checks checks, $failures failed, $skips skipped" >&2
if [ "$failures" -ne 0 ]; then exit 1; fi
if [ "$skips" -ne 0 ]; then exit 77; fi
exit 0
