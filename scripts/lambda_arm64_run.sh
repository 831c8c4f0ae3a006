#!/usr/bin/env bash
# Runs the arm64 python3 of ROOT (scripts/arm64_rootfs.sh) as Lambda's arm64 sandbox lays out a function and shows
# it the machine: the layer at /opt/python, the function's code at /var/task and the runtime's boto3 at
# /var/runtime when given (LAMBDA_TASK_DIR, LAMBDA_RUNTIME_DIR), on PYTHONPATH in Lambda's order; an ARM
# /proc/cpuinfo (CPUINFO, e.g. tests/fixtures/lambda_arm64_cpuinfo.txt; qemu-user would show the host's x86 one);
# and no /sys/devices/system/cpu/possible or present (the sysfs CPU lists Lambda lacks). The environment is only
# the NAME=VALUE pairs given. All mounts live in a private mount namespace that ends with the command.
#
#   scripts/lambda_arm64_run.sh ROOT LAYER_PYTHON_DIR CPUINFO [NAME=VALUE ...] -- [python3 arguments...]
set -euo pipefail
ROOT=$1 LAYER=$2 CPUINFO=$3
shift 3
exec unshare --mount --propagation private bash -euc '
ROOT=$1 LAYER=$2 CPUINFO=$3 TASK=$4 RUNTIME=$5
shift 5
mount -t proc proc "$ROOT/proc"
mount --bind "$CPUINFO" "$ROOT/proc/cpuinfo"
mount --rbind /sys "$ROOT/sys"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$ROOT/sys/devices/system/cpu"
mount --bind /dev "$ROOT/dev"
mkdir -p "$ROOT/opt/python" "$ROOT/var/task" "$ROOT/var/runtime"
mount --bind "$LAYER" "$ROOT/opt/python"
[ -z "$TASK" ] || mount --bind "$TASK" "$ROOT/var/task"
[ -z "$RUNTIME" ] || mount --bind "$RUNTIME" "$ROOT/var/runtime"
env=(PATH=/usr/bin:/bin PYTHONPATH=/var/task:/opt/python:/var/runtime PYTHONDONTWRITEBYTECODE=1
     LAMBDA_TASK_ROOT=/var/task)
while [ $# -gt 0 ] && [ "$1" != "--" ]; do env+=("$1"); shift; done
[ $# -gt 0 ] && shift
cd "$ROOT/var/task"
exec chroot "$ROOT" /usr/bin/env -i "${env[@]}" /bin/sh -c "cd /var/task && exec /usr/bin/python3 \"\$@\"" python3 "$@"
' lambda-arm64 "$ROOT" "$LAYER" "$CPUINFO" "${LAMBDA_TASK_DIR:-}" "${LAMBDA_RUNTIME_DIR:-}" "$@"
