#!/usr/bin/env bash
# Installs the system libraries Quern links (libarchive, zlib) and the tools its tests
# use (zstd, zip, gzip, tar, python3; Slurm and munge for the cluster tests), if missing. Safe to
# run again; needs root or sudo for apt.
set -euo pipefail
need=()
pkg-config --exists libarchive 2>/dev/null || need+=(libarchive-dev)
pkg-config --exists zlib 2>/dev/null || need+=(zlib1g-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v zstd >/dev/null || need+=(zstd)
command -v zip >/dev/null || need+=(zip)
command -v python3 >/dev/null || need+=(python3)   # scripts/torture.py, scripts/fuzz-seeds.py
# The metrics test parses Quern's textfile with Prometheus' own parser (Debian's python3).
/usr/bin/python3 -c "import prometheus_client.parser" 2>/dev/null || need+=(python3-prometheus-client)
command -v systemd-analyze >/dev/null || need+=(systemd)   # contrib/systemd's units are verified by the tests
command -v slurmctld >/dev/null || need+=(slurmctld slurmd slurm-client munge)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
