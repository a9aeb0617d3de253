#!/usr/bin/env bash
# trixie.sh: prove the Debian 13 build. Makes a Debian 13 (trixie) root with debootstrap from
# Debian's packages, installs trixie's libmbedtls-dev (3.6), libwebsockets-dev, libuv1-dev,
# libsqlite3-dev, uthash-dev, libnats-dev, libsystemd-dev there, builds this tree against them (-DCERTMQ_MBEDTLS=auto picks the
# system's 3.6, nothing is fetched) and runs the unit tests and the TLS 1.3 integration test.
#
# usage (root): test/distro/trixie.sh [--keep]
#   TRIXIE_ROOT  where the root lives (default /var/tmp/certmq-trixie; reused when present, so a
#                second run skips debootstrap: ~2 min instead of ~6 on the benchmark machine)
#   DEBIAN_MIRROR  default: the Debian mirror the system's apt sources name
# --keep leaves the build in $TRIXIE_ROOT/build. Not part of CI (it downloads ~150 MB).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${TRIXIE_ROOT:-/var/tmp/certmq-trixie}
KEEP=0
[ "${1:-}" = --keep ] && KEEP=1
[ "$(id -u)" = 0 ] || { echo "trixie.sh: needs root (debootstrap, chroot)" >&2; exit 2; }

mirror() {
    [ -n "${DEBIAN_MIRROR:-}" ] && { echo "$DEBIAN_MIRROR"; return; }
    # Missing files are fine: sources may live in either place.
    { grep -hv '^[[:space:]]*#' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true; } |
        { grep -oE '(https?|ftp)://[^ ]+/debian/?( |$)' || true; } | head -1 | tr -d ' '
}
MIRROR=$(mirror)
[ -n "$MIRROR" ] || { echo "trixie.sh: no Debian mirror in /etc/apt/sources.list(.d); set DEBIAN_MIRROR" >&2; exit 2; }

command -v debootstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }

PKGS=cmake,make,gcc,libc6-dev,pkg-config,git,ca-certificates,openssl,python3,python3-paho-mqtt,\
mosquitto-clients,libmbedtls-dev,libwebsockets-dev,libwebsockets-evlib-uv,libuv1-dev,\
libsqlite3-dev,uthash-dev,libnats-dev,libsystemd-dev
if [ ! -x "$ROOT/usr/bin/cmake" ]; then
    echo "trixie.sh: debootstrap trixie into $ROOT from $MIRROR"
    debootstrap --variant=minbase --include="$PKGS" \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg trixie "$ROOT" "$MIRROR"
fi

cleanup() {
    umount "$ROOT/proc" 2>/dev/null || true
    umount "$ROOT/dev/pts" 2>/dev/null || true
    umount "$ROOT/dev" 2>/dev/null || true
}
trap cleanup EXIT
mount -t proc proc "$ROOT/proc"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"

# A root made before a dependency was added gets it now.
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -c "
    dpkg -s ${PKGS//,/ } >/dev/null 2>&1 || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${PKGS//,/ }; }"

# The working tree as it is (not only what is committed), without build directories.
rm -rf "$ROOT/src" "$ROOT/build"
mkdir -p "$ROOT/src"
tar -C "$SRC" --exclude='./build*' --exclude='./dev-pki' --exclude='node_modules' -cf - . |
    tar -C "$ROOT/src" -xf -

chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root bash -euo pipefail -c '
    grep -h "define MBEDTLS_VERSION_STRING " /usr/include/mbedtls/build_info.h
    cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCERTMQ_MBEDTLS=auto
    cmake --build /build -j"$(nproc)"
    cd /build
    ctest -L unit --output-on-failure
    ctest -R "integration/42-tls13" --output-on-failure
'
[ $KEEP = 1 ] || rm -rf "$ROOT/build"
echo "trixie.sh: Debian 13 build and tests passed"
