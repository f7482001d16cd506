#!/usr/bin/env bash
# Installs the Debian packages the tests' servers need when they are missing: clamd (clamav-daemon) for the
# virus-scan tests (test/servers/clamd.ts starts it on the signatures in test/servers/clamav). Debian or Ubuntu;
# run as root (CI containers) or with sudo. Nothing is downloaded when clamd is already there.
set -euo pipefail

packages=(clamav clamav-daemon)

if command -v clamd >/dev/null 2>&1 || [ -x /usr/sbin/clamd ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test/servers/install.sh: clamd is not installed, and installing ${packages[*]} needs root: run sudo $0" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "test/servers/install.sh: no apt-get here; install clamd (ClamAV ${packages[*]}) with this system's package manager" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Package lists are read only when they do not know the packages yet, or are too old to fetch them.
if ! apt-cache show clamav-daemon >/dev/null 2>&1; then
  apt-get update
fi
if ! apt-get install -y --no-install-recommends "${packages[@]}"; then
  apt-get update
  apt-get install -y --no-install-recommends "${packages[@]}"
fi
