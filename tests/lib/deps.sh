#!/usr/bin/env bash
# Installs the Debian packages volmig needs to build, test, demo and bench.
# Quiet when everything is present; apt-get runs only for what is missing.
set -eu
pkgs=(gcc make pkg-config clang libclang-rt-14-dev liburing-dev libjansson-dev libnbd-dev libnbd-bin
      nbdkit qemu-system-x86 qemu-utils fio libcmocka-dev libvirt-dev libxml2-dev
      libvirt-daemon-system libvirt-clients libedit-dev libyaml-dev
      libgnutls28-dev gnutls-bin iproute2 util-linux gnuplot-nox tmux valgrind
      procps psmisc jq)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages and not root; run 'make deps' as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
