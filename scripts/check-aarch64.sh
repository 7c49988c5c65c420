#!/usr/bin/env bash
# Shows that CKernels builds and runs on AArch64 with the scalar path: cross-compiles every
# Sources/CKernels/*.c plus scripts/aarch64/kernels_check.c into a static aarch64
# executable and runs it under qemu-user. No AArch64 Swift SDK exists here, so this is a
# C-level check. Installs the cross libc, the cross libgcc (crtbeginT.o, libgcc.a,
# libgcc_eh.a, which a static link needs) and qemu if missing; needs root or sudo for apt.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s%N)

need=()
for pkg in libc6-dev-arm64-cross libgcc-12-dev-arm64-cross; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --gcc-toolchain=/usr lets clang find /usr/lib/gcc-cross/aarch64-linux-gnu/12 (crt files,
# libgcc); the headers of the cross libc are not under <sysroot>/usr/include, hence -isystem.
TARGET=(--target=aarch64-linux-gnu --sysroot=/usr/aarch64-linux-gnu)
CFLAGS=("${TARGET[@]}" -isystem /usr/aarch64-linux-gnu/include -O2 -Wall -Werror -I Sources/CKernels/include)
LDFLAGS=("${TARGET[@]}" --gcc-toolchain=/usr -fuse-ld=lld -static)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
objs=()
for src in Sources/CKernels/*.c; do
  obj="$out/$(basename "$src" .c).o"
  clang "${CFLAGS[@]}" -c "$src" -o "$obj"
  objs+=("$obj")
done
clang "${CFLAGS[@]}" -std=c11 -c scripts/aarch64/kernels_check.c -o "$out/kernels_check.o"
clang "${LDFLAGS[@]}" "${objs[@]}" "$out/kernels_check.o" -lm -o "$out/kernels_check"
echo "built ${#objs[@]} CKernels sources + harness as a static aarch64 executable"

# Static, so qemu needs no -L for the dynamic loader.
status=0
qemu-aarch64 "$out/kernels_check" || status=$?
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
printf 'check-aarch64: %s in %d.%03ds\n' "$([ $status = 0 ] && echo OK || echo FAILED)" \
  $((elapsed / 1000)) $((elapsed % 1000))
exit $status
