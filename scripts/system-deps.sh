#!/usr/bin/env bash
# System packages the test suite uses: Debian's redis-server (tests start their own on free ports) and
# Chromium + ChromeDriver (the dashboard browser test). Installs only what is missing; needs root + apt.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: please install: ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# a packaged redis-server may start as a service; the tests start their own
service redis-server stop >/dev/null 2>&1 || true
