#!/usr/bin/env bash
# An arm64 Debian root with python3, run on this x86 machine by user-mode emulation (Debian's qemu-user-static),
# for tests/functional/test_layer_arm64.py: the router layer's arm64 wheels are imported and scored there, as
# Lambda's arm64 sandbox would, with its missing sysfs CPU lists (scripts/lambda_arm64_run.sh).
#
#   scripts/arm64_rootfs.sh [DIR]     (default $HYBRID_ROUTER_ARM64_ROOT or ~/.cache/hybrid-router/arm64-bookworm)
#
# Needs root (apt-get, binfmt_misc, debootstrap); takes a few minutes once, then is kept. Without root or
# without the packages it says why and exits 0: the test then skips and says so.
set -uo pipefail
ROOT="${1:-${HYBRID_ROUTER_ARM64_ROOT:-$HOME/.cache/hybrid-router/arm64-bookworm}}"
STAMP="$ROOT/.hybrid-router-ready"
SUITE=bookworm
say() { echo "arm64 emulation: $*" >&2; }

if [ "$(id -u)" != 0 ]; then say "needs root (apt-get, binfmt_misc, debootstrap); the arm64 layer test will be skipped"; exit 0; fi
if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q qemu-user-static binfmt-support debootstrap >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q qemu-user-static binfmt-support debootstrap >/dev/null; }; } \
    || { say "could not install qemu-user-static and debootstrap with apt-get"; exit 0; }
fi
# The kernel runs arm64 binaries through qemu once binfmt_misc knows it (F: the interpreter is opened now, so it
# works inside a chroot too).
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then say "binfmt_misc has no qemu-aarch64 entry (a container without it?)"; exit 0; fi

if [ ! -e "$STAMP" ]; then
  rm -rf "$ROOT" && mkdir -p "$(dirname "$ROOT")"
  say "debootstrap $SUITE arm64 into $ROOT (a few minutes, once)"
  # The mirror this machine's apt already uses (deb822 sources first, then the one-line format).
  MIRROR="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)"
  [ -n "$MIRROR" ] || MIRROR="$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
  if [ -z "$MIRROR" ]; then say "no Debian mirror configured for apt"; exit 0; fi
  if ! debootstrap --arch=arm64 --variant=minbase --include=python3 "$SUITE" "$ROOT" "$MIRROR" \
      >"$ROOT.log" 2>&1; then
    say "debootstrap failed, see $ROOT.log"; exit 0
  fi
  chroot "$ROOT" /usr/bin/python3 -c 'import platform; assert platform.machine() == "aarch64"' \
    || { say "the arm64 python3 does not run under emulation"; exit 0; }
  touch "$STAMP"
fi
echo "$ROOT"
