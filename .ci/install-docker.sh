#!/usr/bin/env bash
# Install and start the Docker engine of this test bed (see ../shared/TESTBED.md):
# Debian's docker.io (Engine 20.10) plus the Compose v2 and buildx CLI plugins taken
# from Debian trixie's packages. Idempotent: a second run only checks.
set -euo pipefail

log() { printf '[install-docker] %s\n' "$*" >&2; }

plugins_dir=/usr/local/lib/docker/cli-plugins

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing docker.io from Debian"
  bash "$(dirname "${BASH_SOURCE[0]}")/../tests/apt-install.sh" docker.io
fi

if ! docker compose version >/dev/null 2>&1 || ! docker buildx version >/dev/null 2>&1; then
  log "fetching docker-compose and docker-buildx plugins from Debian trixie"
  apt_root=$(mktemp -d)
  trap 'rm -rf "$apt_root"' EXIT
  mkdir -p "$apt_root/lists/partial" "$apt_root/cache/archives/partial" "$apt_root/etc/preferences.d"
  cat > "$apt_root/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
SRC
  apt_opts=(
    -o "Dir::Etc::SourceList=$apt_root/sources.list"
    -o "Dir::Etc::SourceParts=-"
    -o "Dir::Etc::PreferencesParts=$apt_root/etc/preferences.d"
    -o "Dir::State::Lists=$apt_root/lists"
    -o "Dir::Cache=$apt_root/cache"
    -o "APT::Get::List-Cleanup=0"
  )
  apt-get "${apt_opts[@]}" update -qq
  (cd "$apt_root" && apt-get "${apt_opts[@]}" download docker-compose docker-buildx >/dev/null)
  mkdir -p "$plugins_dir"
  for deb in "$apt_root"/docker-compose_*.deb "$apt_root"/docker-buildx_*.deb; do
    dpkg-deb -x "$deb" "$apt_root/x"
  done
  install -m 0755 "$apt_root"/x/usr/libexec/docker/cli-plugins/docker-compose "$plugins_dir/"
  install -m 0755 "$apt_root"/x/usr/libexec/docker/cli-plugins/docker-buildx "$plugins_dir/"
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/dockerd.log"; tail -n 30 /var/log/dockerd.log >&2; exit 1; }
fi
log "$(docker version --format 'engine {{.Server.Version}} (API {{.Server.APIVersion}})')"
log "$(docker compose version)"
log "$(docker buildx version)"
