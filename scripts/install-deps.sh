#!/usr/bin/env bash
# Installs everything pushgate needs to build and test on Debian 12 (run as root). Safe to run again:
# it installs only what is missing and reinstalls node modules only when the lockfile changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

PACKAGES=(
    build-essential cmake pkg-config
    libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libwebsockets-evlib-ev libev-dev
    libmosquitto-dev mosquitto mosquitto-clients mosquitto-dev
    libjansson-dev libjwt-dev libpcre2-dev libsqlite3-dev libcurl4-openssl-dev uthash-dev libssl-dev
    chromium curl ca-certificates
    clang libclang-rt-dev
)
if ! command -v node >/dev/null 2>&1; then
    PACKAGES+=(nodejs)
fi
if ! command -v npm >/dev/null 2>&1; then
    PACKAGES+=(npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
else
    echo "install-deps: all Debian packages present"
fi

# The tests start their own brokers on free loopback ports; the distribution's mosquitto service is not
# used, so keep it from running where a service manager would start it.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-enabled --quiet mosquitto 2>/dev/null || systemctl is-active --quiet mosquitto 2>/dev/null; then
        $SUDO systemctl disable --now mosquitto || true
    fi
elif [ -f /run/mosquitto/mosquitto.pid ] && command -v service >/dev/null 2>&1; then
    $SUDO service mosquitto stop || true
fi

# Node modules for the integration and browser tests.
cd "$ROOT"
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] \
    || [ package-lock.json -nt node_modules/.package-lock.json ] \
    || [ package.json -nt node_modules/.package-lock.json ]; then
    echo "install-deps: npm ci"
    npm ci --no-audit --no-fund
else
    echo "install-deps: node_modules up to date"
fi

echo "install-deps: node $(node --version), npm $(npm --version), cmake $(cmake --version | head -n1 | awk '{print $3}')"
