#!/usr/bin/env bash
# Installs the Debian packages the tests' servers need when they are missing: clamd (clamav-daemon) for the
# virus-scan tests (test/servers/clamd.ts starts it on the signatures in test/servers/clamav), and Ceph's
# monitor, OSD and RGW (ceph-mon, ceph-osd, radosgw; they bring ceph-common with ceph and radosgw-admin) for
# the S3 tests (test/servers/rgw.ts runs a one-node cluster in a temp dir). Debian or Ubuntu; run as root
# (CI containers) or with sudo. Nothing is downloaded when both are already there.
set -euo pipefail

packages=()
if ! command -v clamd >/dev/null 2>&1 && [ ! -x /usr/sbin/clamd ]; then
  packages+=(clamav clamav-daemon)
fi
if ! command -v radosgw >/dev/null 2>&1 && [ ! -x /usr/bin/radosgw ]; then
  packages+=(ceph-mon ceph-osd radosgw)
fi

if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test/servers/install.sh: installing ${packages[*]} needs root: run sudo $0" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "test/servers/install.sh: no apt-get here; install ${packages[*]} (ClamAV's clamd, Ceph's RGW) with this system's package manager" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Package lists are read only when they do not know the packages yet, or are too old to fetch them.
if ! apt-cache show "${packages[@]}" >/dev/null 2>&1; then
  apt-get update
fi
if ! apt-get install -y --no-install-recommends "${packages[@]}"; then
  apt-get update
  apt-get install -y --no-install-recommends "${packages[@]}"
fi
