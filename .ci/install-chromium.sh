#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the browser tests (`nox -s browser`).
# Playwright drives this binary; `playwright install` would download its own build, which
# this test bed cannot fetch. Idempotent: a second run only checks.
set -euo pipefail

log() { printf '[install-chromium] %s\n' "$*" >&2; }

if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
log "$(/usr/bin/chromium --version 2>/dev/null || echo 'chromium installed')"
