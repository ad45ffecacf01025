#!/usr/bin/env bash
# Check creditops' Prometheus files with promtool, installing Debian's prometheus package (which
# ships promtool) when it is missing (needs root, as on CI).
#   bash scripts/promtool.sh            check rules, config and the rule unit tests
#   bash scripts/promtool.sh --install  only make sure promtool is there
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "promtool.sh: $*" >&2; }

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    log "promtool is missing: run 'apt-get install -y prometheus' as root"
    exit 1
  fi
  log "installing promtool from Debian's prometheus package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq prometheus >&2
fi
[ "${1:-}" = "--install" ] && exit 0

promtool check rules deploy/prometheus/alerts.yml
promtool check config deploy/prometheus/prometheus.yml
promtool test rules deploy/prometheus/alerts_test.yml
