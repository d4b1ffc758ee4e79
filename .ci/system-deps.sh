#!/usr/bin/env bash
# Debian packages the test suite drives for real (Prometheus, systemd-analyze, nix, Ansible,
# redis-server).
# Installs only what is missing, and only where apt-get can (root on Debian).
set -euo pipefail
want=()
command -v prometheus >/dev/null 2>&1 || want+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || want+=(systemd)
command -v nix-instantiate >/dev/null 2>&1 || want+=(nix-bin)
command -v ansible-playbook >/dev/null 2>&1 || want+=(ansible)
command -v ansible-lint >/dev/null 2>&1 || want+=(ansible-lint)
command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
python3 -c 'import ensurepip' >/dev/null 2>&1 || want+=(python3-venv)
if [ ${#want[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${want[*]} (install them to run every test)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
