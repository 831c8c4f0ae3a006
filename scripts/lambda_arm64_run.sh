#!/usr/bin/env bash
# Runs the arm64 python3 of ROOT (scripts/arm64_rootfs.sh) on a layer folder as Lambda's arm64 sandbox lays it
# out and shows it the machine: the layer at /opt/python (on PYTHONPATH), an ARM /proc/cpuinfo (CPUINFO, e.g.
# tests/fixtures/lambda_arm64_cpuinfo.txt; qemu-user would show the host's x86 one), and no
# /sys/devices/system/cpu/possible or present (the sysfs CPU lists Lambda lacks). All mounts live in a private
# mount namespace that ends with the command; nothing outside changes.
#
#   scripts/lambda_arm64_run.sh ROOT LAYER_PYTHON_DIR CPUINFO [python3 arguments...]
set -euo pipefail
ROOT=$1 LAYER=$2 CPUINFO=$3
shift 3
exec unshare --mount --propagation private bash -euc '
ROOT=$1 LAYER=$2 CPUINFO=$3
shift 3
mount -t proc proc "$ROOT/proc"
mount --bind "$CPUINFO" "$ROOT/proc/cpuinfo"
mount --rbind /sys "$ROOT/sys"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$ROOT/sys/devices/system/cpu"
mount --bind /dev "$ROOT/dev"
mkdir -p "$ROOT/opt/python"
mount --bind "$LAYER" "$ROOT/opt/python"
exec chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin PYTHONPATH=/opt/python PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$@"
' lambda-arm64 "$ROOT" "$LAYER" "$CPUINFO" "$@"
