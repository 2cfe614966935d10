#!/usr/bin/env bash
# The closest thing to a Raspberry Pi here: a Debian bookworm arm64 root (debootstrap + qemu-user-static, both
# from Debian's packages) in which the README's set-up command installs the agent from PyPI wheels and the demo
# runs and verifies. Slow (every arm64 instruction is emulated); NOT run in CI. Needs root.
#
# Usage: sudo scripts/aarch64-smoke.sh [ROOT_DIR]       (default /var/tmp/evidence-agent-arm64; kept for reruns)
# Env:   MIRROR=...   a Debian mirror URL for debootstrap (default: debootstrap's own)
#        SECONDS_DEMO=20  demo length
# Prints the time of each step; exit 0 when the demo's vault verifies inside the arm64 root.
set -euo pipefail
root=${1:-/var/tmp/evidence-agent-arm64}
repo=$(cd "$(dirname "$0")/.." && pwd)
demo_s=${SECONDS_DEMO:-20}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
t0=$(date +%s)

step "host packages: debootstrap qemu-user-static binfmt-support"
pkgs=(debootstrap qemu-user-static binfmt-support)
missing=(); for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

step "binfmt_misc: run arm64 ELF binaries through qemu-aarch64-static"
[ -e /proc/sys/fs/binfmt_misc/register ] || $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  $SUDO update-binfmts --enable qemu-aarch64 2>/dev/null || true
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
  $SUDO sh -c 'cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register'
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { echo "cannot register qemu-aarch64 with binfmt_misc"; exit 2; }

if [ ! -x "$root/usr/bin/python3" ]; then
  step "debootstrap bookworm arm64 into $root"
  $SUDO debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" ${MIRROR:+"$MIRROR"}
fi
step "arm64 root: $(file -b "$root/usr/bin/python3.11" 2>/dev/null || echo python3.11) / $($SUDO chroot "$root" uname -m)"

cleanup() { for m in dev/pts dev sys proc; do $SUDO umount -l "$root/$m" 2>/dev/null || true; done; }
trap cleanup EXIT
for m in proc sys dev dev/pts; do $SUDO mount --bind "/$m" "$root/$m"; done
$SUDO cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# CAs this host added locally (e.g. a TLS-inspecting proxy in front of the package registries) are trusted inside too
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  $SUDO cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  $SUDO chroot "$root" update-ca-certificates >/dev/null
fi

step "copy the checkout (tracked and new files, no .venv) to /opt/evidence-agent"
$SUDO rm -rf "$root/opt/evidence-agent"; $SUDO mkdir -p "$root/opt/evidence-agent"
(cd "$repo" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | $SUDO tar -xf - -C "$root/opt/evidence-agent"

step "README set-up command (python3 -m venv .venv && pip install -e . && evidence-agent demo)"
$SUDO chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin LANG=C.UTF-8 \
  PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DEFAULT_TIMEOUT=180 bash -c "
  set -e; cd /opt/evidence-agent
  s=\$(date +%s)
  python3 -m venv .venv && .venv/bin/pip install -q -e .
  echo \"install: \$((\$(date +%s) - s)) s\"
  s=\$(date +%s)
  .venv/bin/evidence-agent demo --vault demo-vault --seconds $demo_s
  echo \"demo: \$((\$(date +%s) - s)) s (including start-up and verify)\"
  s=\$(date +%s)
  .venv/bin/evidence-agent verify demo-vault | head -n 4
  echo \"verify: \$((\$(date +%s) - s)) s\"
  .venv/bin/python -c 'import platform, cv2, av, c2pa; print(platform.machine(), \"cv2\", cv2.__version__, \"av\", av.__version__, \"c2pa\", c2pa.sdk_version())'
"
echo
echo "aarch64 smoke: OK in $(( $(date +%s) - t0 )) s"
