#!/usr/bin/env bash
# Installs the system packages mvc builds and tests with, only when they are missing.
# Debian/Ubuntu (apt-get); runs as root, or through sudo when it is available.
set -euo pipefail

need=()
have_pc() { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "$1"; }
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
have_pc libcrypto || need+=(libssl-dev)
have_pc zlib || need+=(zlib1g-dev)
have_pc libgit2 || need+=(libgit2-dev)
have_pc libzstd || need+=(libzstd-dev)
# libcurl's headers, for the S3 client (CMVCHTTP, which loads libcurl itself when a command needs it).
have_pc libcurl || need+=(libcurl4-openssl-dev)
command -v git >/dev/null 2>&1 || need+=(git)
git lfs version >/dev/null 2>&1 || need+=(git-lfs)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v cmp >/dev/null 2>&1 || need+=(diffutils)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3 python3-pip)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing ${need[*]} and no apt-get to install them" >&2
  echo "hint: install them with your system's package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "error: missing ${need[*]}; run as root or install them: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
echo "installing: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
