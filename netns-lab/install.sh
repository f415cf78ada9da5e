#!/usr/bin/env bash
# Install what ipsbridge, its tests and the netns lab need, on Debian bookworm, as root.
#
#   bash netns-lab/install.sh                  # system tools + `pip install -e .[test]`
#   bash netns-lab/install.sh --with-suricata  # also Suricata 7 (bookworm-backports), for the benchmark
#
# Idempotent: packages already present are not fetched again.  Quiet unless
# something fails; then it says what and exits non-zero.  nginx-light and wrk
# are the benchmark's HTTP server and client: the lab runs nginx with a private
# config per run, so the Debian service is never started (and is disabled).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WITH_SURICATA=0
for arg in "$@"; do
    case "$arg" in
        --with-suricata) WITH_SURICATA=1 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

die() { echo "install.sh: $*" >&2; exit 1; }
step() { [ -t 1 ] && echo "install.sh: $*" || true; }

[ "$(id -u)" -eq 0 ] || die "run as root (apt-get, network namespaces)"
command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian bookworm"
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || die "$PY not found"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PY is $("$PY" -V 2>&1); ipsbridge needs Python >= 3.11"

export DEBIAN_FRONTEND=noninteractive
APT_LOG="$(mktemp)"
PIP_LOG="$(mktemp)"
OWN_POLICY=""        # a policy-rc.d this script wrote, removed whatever happens
trap 'rm -f "$APT_LOG" "$PIP_LOG" $OWN_POLICY' EXIT
apt_quiet() {
    if ! apt-get -qq -o=Dpkg::Use-Pty=0 "$@" >"$APT_LOG" 2>&1; then
        cat "$APT_LOG" >&2
        die "apt-get $* failed"
    fi
}

missing() {   # print the packages of "$@" that are not installed
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

# openssl: tests/lab/test_tls_dns_lab.py makes its self-signed server certificate with it
# libhyperscan5: Debian's libhs, which the prefilter calls from C (rules/_hotpath.c opens it
# at run time; without it scans go through the hyperscan module, about 6x the cost per call)
PKGS=(iproute2 ethtool iputils-ping iperf3 tcpdump procps nginx-light wrk openssl gcc libc6-dev libhyperscan5)
# rules/_hotpath.c is compiled by pip: Python's headers too (a Debian python3 needs python3-dev)
"$PY" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || PKGS+=(python3-dev)
mapfile -t NEED < <(missing "${PKGS[@]}")
NEW_NGINX=0
if [ "${#NEED[@]}" -gt 0 ]; then
    step "apt-get install ${NEED[*]}"
    [[ " ${NEED[*]} " == *" nginx-light "* ]] && NEW_NGINX=1
    # No service may start while installing: nginx's postinst would start the system
    # nginx on port 80 (the bench runs its own, per lab, by PID).  Debian's hook for
    # that is /usr/sbin/policy-rc.d; a machine that has one keeps it.
    POLICY=/usr/sbin/policy-rc.d
    if [ ! -e "$POLICY" ]; then
        OWN_POLICY="$POLICY"
        printf '#!/bin/sh\nexit 101\n' >"$POLICY"
        chmod 755 "$POLICY"
    fi
    apt_quiet update
    apt_quiet install -y --no-install-recommends "${NEED[@]}"
    if [ -n "$OWN_POLICY" ]; then
        rm -f "$OWN_POLICY"
        OWN_POLICY=""
    fi
fi
if [ "$NEW_NGINX" -eq 1 ]; then
    # installed just now by this script, so nobody relies on the system service yet
    if [ -d /run/systemd/system ]; then
        systemctl disable --now nginx.service >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null; then
        update-rc.d nginx disable >/dev/null 2>&1 || true
    fi
fi

if [ "$WITH_SURICATA" -eq 1 ] && [ ! -x /usr/bin/suricata ]; then
    step "suricata from bookworm-backports"
    LIST=/etc/apt/sources.list.d/bookworm-backports.list
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "deb http://deb.debian.org/debian bookworm-backports main" >"$LIST"
    fi
    apt_quiet update
    apt_quiet install -y --no-install-recommends -t bookworm-backports suricata
    /usr/bin/suricata -V >/dev/null 2>&1 || die "suricata installed but does not run"
fi

step "pip install -e $REPO[test]"
if ! "$PY" -m pip install -q --disable-pip-version-check --no-input -e "$REPO[test]" >"$PIP_LOG" 2>&1; then
    cat "$PIP_LOG" >&2
    die "pip install -e $REPO[test] failed"
fi

for tool in ip ethtool ping iperf3 tcpdump nginx wrk openssl; do
    command -v "$tool" >/dev/null || die "$tool still missing after install"
done
"$PY" -c 'import pyroute2, yaml, structlog, hyperscan, pytest, scapy' 2>/dev/null \
    || die "Python dependencies missing after pip install (pyroute2 pyyaml structlog hyperscan pytest scapy)"
