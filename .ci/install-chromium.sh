#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the browser tests (`nox -s browser`).
# Playwright drives this binary; `playwright install` would download its own build, which
# this test bed cannot fetch. Idempotent: a second run only checks.
set -euo pipefail

log() { printf '[install-chromium] %s\n' "$*" >&2; }

if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium from Debian"
  bash "$(dirname "${BASH_SOURCE[0]}")/../tests/apt-install.sh" --no-install-recommends chromium
fi
log "$(/usr/bin/chromium --version 2>/dev/null || echo 'chromium installed')"
