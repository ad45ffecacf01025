#!/usr/bin/env bash
# Install the Debian packages a make target needs when they are missing, with one
# `apt-get update` for all of them (needs root or password-less sudo, as on CI).
#   bash scripts/system-packages.sh test    postgresql (log tests), prometheus (promtool),
#                                           prometheus-alertmanager (amtool, and the
#                                           topology test's Alertmanager),
#                                           prometheus-pushgateway (the topology test),
#                                           docker-compose (parses compose.yaml, no daemon),
#                                           chromium (dashboard tests, driven by Playwright)
#   bash scripts/system-packages.sh bench   wrk (HTTP load generator)
set -euo pipefail
need=()
case "${1:-}" in
  test)
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
    command -v promtool >/dev/null 2>&1 || need+=(prometheus)
    command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
    command -v prometheus-pushgateway >/dev/null 2>&1 || need+=(prometheus-pushgateway)
    command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
    ;;
  bench)
    command -v wrk >/dev/null 2>&1 || need+=(wrk)
    ;;
  *)
    echo "usage: $0 test|bench" >&2
    exit 2
    ;;
esac
[ ${#need[@]} -eq 0 ] && exit 0

run=()
if [ "$(id -u)" -ne 0 ]; then
  if ! sudo -n true 2>/dev/null; then
    echo "system-packages: missing ${need[*]}; install them as root: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  run=(sudo -n)
fi
echo "system-packages: installing ${need[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
"${run[@]}" apt-get update -qq >&2
"${run[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
