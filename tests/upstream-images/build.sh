#!/usr/bin/env bash
# Build local stand-ins for the upstream images trackstack pins, for CI only.
#
# No registry is reachable on the test bed, so every image the compose stack
# references is built here from a debootstrapped Debian base and tagged with the
# exact upstream reference. The product never mentions these stand-ins; it just
# finds its pinned references already present in the local image store.
#
# Usage: tests/upstream-images/build.sh [--force] [--verbose] [--list]
#   --force    rebuild the Debian base and all six stand-ins even if present
#   --verbose  stream `docker build` output instead of writing it to a log file
#   --list     print the image references the stand-ins are tagged with; build nothing
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../.." && pwd)

BASE_REF=trackstack-testbed/debian:trixie
SUITE=trixie
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE_DIR=${TRACKSTACK_TESTBED_CACHE:-/var/cache/trackstack-testbed}
BIN_DIR=$CACHE_DIR/bin
LOG_DIR=$CACHE_DIR/logs
HOST_CA=/etc/ssl/certs/ca-certificates.crt

# MinIO publishes no semver tags, so the Go module proxy only knows pseudo-versions.
# One row per supported image tag: release tag, minio pseudo-version + commit,
# and the mc release shipped alongside it (pseudo-version, commit, tag).
minio_pins() {
  case $1 in
    RELEASE.2025-09-07T16-13-09Z)
      echo "v0.0.0-20250907161309-07c3a429bfed 07c3a429bfed433e49018cb0f78a52145d4bedeb" \
           "v0.0.0-20250813083541-7394ce0dd2a8 7394ce0dd2a80935aded936b09fa12cbb3cb8096 RELEASE.2025-08-13T08-35-41Z" ;;
    *) return 1 ;;
  esac
}

# SeaweedFS's release tags (4.53) are no semver either, and go.mod's replace
# directives keep `go install` away: go-binary.sh builds weed inside the module
# at the pseudo-version of the release commit. One row per supported tag.
seaweedfs_pins() {
  case $1 in
    4.53) echo "v0.0.0-20261109003541-7506e5f91cd6 7506e5f91cd6" ;;
    *) return 1 ;;
  esac
}

force=0
verbose=0
list_only=0
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    --verbose|-v) verbose=1 ;;
    --list) list_only=1 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

t_start=$SECONDS
log() { ((list_only)) || printf '[upstream-images +%3ss] %s\n' "$((SECONDS - t_start))" "$*"; }
die() { printf '[upstream-images] ERROR: %s\n' "$*" >&2; exit 1; }

# --- image references ---------------------------------------------------------
# .env.example is the product's source of truth; the defaults below are the pins
# at the time of writing and only apply when it is absent or lacks a key.
POSTGRES_IMAGE=postgres:17-trixie
MINIO_IMAGE=quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z
# ARTIFACT_STORE=seaweedfs (issue 28).
SEAWEEDFS_IMAGE=chrislusf/seaweedfs:4.53
PGADMIN_IMAGE=dpage/pgadmin4:9.18
MLFLOW_BASE_IMAGE=python:3.13-slim-trixie
# The reverse proxy of the Swarm deployment (issue 13); the swarm test bed
# (tests/swarm/) loads it into its nodes.
CADDY_IMAGE=caddy:2.11.9

env_file=$repo_root/.env.example
read_env_key() { # KEY -> value of the last KEY=VALUE line, quotes/comments stripped
  local line val
  line=$(grep -E "^[[:space:]]*(export[[:space:]]+)?$1[[:space:]]*=" "$env_file" | tail -n 1) || return 1
  val=${line#*=}
  val=${val#"${val%%[![:space:]]*}"}
  case $val in
    \"*) val=${val#\"}; val=${val%%\"*} ;;
    \'*) val=${val#\'}; val=${val%%\'*} ;;
    *) val=${val%%[[:space:]]#*}; val=${val%"${val##*[![:space:]]}"} ;;
  esac
  [[ -n $val ]] && printf '%s' "$val"
}
if [[ -f $env_file ]]; then
  for key in POSTGRES_IMAGE MINIO_IMAGE SEAWEEDFS_IMAGE PGADMIN_IMAGE MLFLOW_BASE_IMAGE CADDY_IMAGE; do
    if val=$(read_env_key "$key"); then printf -v "$key" '%s' "$val"; fi
  done
  log "image references from ${env_file#"$repo_root"/}"
else
  log "no .env.example; using built-in image references"
fi

tag_of() { # image ref -> tag (digest and registry port ignored)
  local ref=${1%@*} last
  last=${ref##*/}
  [[ $last == *:* ]] || die "image reference '$1' has no tag; cannot derive a version"
  printf '%s' "${last##*:}"
}

# Versions come from the tags so that bumping a pin in .env.example is enough.
pg_tag=$(tag_of "$POSTGRES_IMAGE")
PG_MAJOR=${pg_tag%%[.-]*}
[[ $PG_MAJOR =~ ^[0-9]+$ ]] || die "cannot derive a PostgreSQL major from '$POSTGRES_IMAGE'"
py_tag=$(tag_of "$MLFLOW_BASE_IMAGE")
[[ $py_tag =~ ^([0-9]+\.[0-9]+) ]] || die "cannot derive a Python version from '$MLFLOW_BASE_IMAGE'"
PYTHON_MINOR=${BASH_REMATCH[1]}
PGADMIN_VERSION=$(tag_of "$PGADMIN_IMAGE")
MINIO_RELEASE=$(tag_of "$MINIO_IMAGE")
SEAWEEDFS_RELEASE=$(tag_of "$SEAWEEDFS_IMAGE")
CADDY_VERSION=$(tag_of "$CADDY_IMAGE")
[[ $CADDY_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] \
  || die "cannot derive a Caddy release (X.Y.Z) from '$CADDY_IMAGE'"
# Everything is built on Debian $SUITE: refuse tags that name another suite.
for t in "$pg_tag" "$py_tag"; do
  [[ $t != *-* || $t == *-"$SUITE" || $t == *-slim-"$SUITE" ]] \
    || die "tag '$t' names another Debian suite; these stand-ins are built on $SUITE only"
done

# --- helpers ------------------------------------------------------------------
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
# What a stand-in is built from: its directory and the versions it is built for. An image whose
# label differs (a stand-in edited since) is built again, so a warm CI never tests an old one.
standin_digest() {
  { (cd "$here/$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    printf '%s\n' "$BASE_REF" "$PGADMIN_VERSION" "$PG_MAJOR" "$PYTHON_MINOR" "$MINIO_RELEASE" "$CADDY_VERSION" \
      "$SEAWEEDFS_RELEASE"
  } | sha256sum | cut -c1-16
}
standin_label() { docker image inspect -f '{{ index .Config.Labels "org.trackstack.standin.digest" }}' "$1" 2>/dev/null || true; }

ctx_root=$(mktemp -d)
rootfs=   # debootstrap target while the base is being built
# Build contexts hold copies of binaries, the rootfs device nodes: never leave them.
trap 'rm -rf "$ctx_root" ${rootfs:+"$rootfs"}' EXIT
mkdir -p "$LOG_DIR"

# stage NAME -> a private build context (stand-in dir + the host CA bundle)
stage() {
  local ctx=$ctx_root/$1
  mkdir -p "$ctx"
  cp -a "$here/$1/." "$ctx/"
  cp "$HOST_CA" "$ctx/host-ca.crt"
  printf '%s' "$ctx"
}

# docker_build REF CONTEXT [build args...]
docker_build() {
  local ref=$1 ctx=$2 logf
  shift 2
  logf=$LOG_DIR/$(printf '%s' "$ref" | tr -c 'A-Za-z0-9._-' '_').log
  local cmd=(docker build --build-arg "BASE_IMAGE=$BASE_REF" "$@"
             --label "org.trackstack.standin.ref=$ref" --label "org.trackstack.standin.digest=$digest"
             -t "$ref" "$ctx")
  if ((verbose)); then
    DOCKER_BUILDKIT=1 "${cmd[@]}" --progress=plain
  elif ! DOCKER_BUILDKIT=1 "${cmd[@]}" --progress=plain >"$logf" 2>&1; then
    tail -n 60 "$logf" >&2
    die "docker build of $ref failed (full log: $logf)"
  fi
}

# --- Debian base --------------------------------------------------------------
base_ready=0
old_base_id=
ensure_base() {
  ((base_ready)) && return 0
  base_ready=1
  if have_image "$BASE_REF" && ! ((force)); then
    log "cached: $BASE_REF"
    return 0
  fi
  local t0=$SECONDS
  old_base_id=$(docker image inspect -f '{{.Id}}' "$BASE_REF" 2>/dev/null || true)
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    bash "$here/../apt-install.sh" debootstrap
  fi
  log "building $BASE_REF (debootstrap --variant=minbase $SUITE)"
  rootfs=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$LOG_DIR/debootstrap.log" 2>&1 \
    || { tail -n 30 "$LOG_DIR/debootstrap.log" >&2; die "debootstrap failed (log: $LOG_DIR/debootstrap.log)"; }

  # Same apt sources as the official Debian images (incl. updates and security).
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: ${MIRROR}
Suites: ${SUITE} ${SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: ${SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  # Container-friendly dpkg/apt defaults: no docs/man/translations, no
  # recommends, no cached .debs; keeps every stand-in small.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/trackstack-testbed-nodoc" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG
  cat >"$rootfs/etc/apt/apt.conf.d/90trackstack-testbed" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
CFG
  # debootstrap ran without those excludes: apply them to what it installed.
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
         "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb \
         "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log "$rootfs"/tmp/*
  : >"$rootfs/etc/machine-id"

  tar -C "$rootfs" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change 'LABEL org.trackstack.standin=true org.trackstack.standin.ref=trackstack-testbed/debian:trixie' \
    - "$BASE_REF" >/dev/null
  rm -rf "$rootfs"; rootfs=
  log "built $BASE_REF in $((SECONDS - t0))s"
}

# --- MinIO binaries (Go, built on the host) -----------------------------------
# go_binary NAME MODULE PSEUDO_VERSION RELEASE_TAG COMMIT
go_binary() {
  local name=$1 module=$2 pseudo=$3 release=$4 commit=$5 t0=$SECONDS
  local bin=$BIN_DIR/$name
  # The binary reports its release tag, so the cache is checked by version.
  if [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -qF "$release"; then
    log "cached: $bin ($release)"
    return 0
  fi
  export PATH=$PATH:/usr/local/go/bin
  command -v go >/dev/null 2>&1 || die "go is needed to build $name (Go >= 1.24)"
  mkdir -p "$BIN_DIR"
  # Don't race another build of the same binary (a second CI job, a manual run).
  while pgrep -f "go (install|build) .*github.com/minio/$name@" >/dev/null 2>&1; do
    log "waiting for a running go build of $name"; sleep 10
  done
  if [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -qF "$release"; then
    log "cached: $bin ($release)"; return 0
  fi
  # RELEASE.2025-09-07T16-13-09Z -> Version 2025-09-07T16:13:09Z (what upstream stamps)
  local stamp=${release#RELEASE.} version
  version="${stamp:0:13}:${stamp:14:2}:${stamp:17}"
  local pkg=github.com/minio/$name/cmd
  local ldflags="-s -w -X $pkg.Version=$version -X $pkg.ReleaseTag=$release -X $pkg.CommitID=$commit"
  ldflags+=" -X $pkg.ShortCommitID=${commit:0:12} -X $pkg.CopyrightYear=${stamp:0:4}"
  log "go install $module@$pseudo ($release); this takes a few minutes"
  local glog=$LOG_DIR/go-$name.log nosumdb=${GONOSUMDB:-}
  # Some of these pseudo-versions are served by the proxy but unknown to
  # sum.golang.org (their timestamp is the release time, not the commit time).
  # Only then, skip the checksum database for that one module; its
  # dependencies are still verified.
  if ! go mod download "$module@$pseudo" >"$glog" 2>&1; then
    if grep -q 'verifying .*sumdb/.*\(404\|410\|Not Found\)' "$glog"; then
      log "warning: $module@$pseudo is not in the checksum database; trusting the module proxy for it"
      nosumdb=${nosumdb:+$nosumdb,}$module
    else
      tail -n 30 "$glog" >&2; die "cannot download $module@$pseudo (log: $glog)"
    fi
  fi
  if ! GONOSUMDB=$nosumdb CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN=$BIN_DIR \
       go install -trimpath -ldflags "$ldflags" "$module@$pseudo" >>"$glog" 2>&1; then
    # `go install mod@version` refuses modules with replace directives; then
    # build inside the downloaded module instead.
    log "go install failed; retrying with go build inside the module cache"
    local dir
    dir=$(GONOSUMDB=$nosumdb go mod download -json "$module@$pseudo" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -n $dir ]] || { tail -n 30 "$glog" >&2; die "cannot download $module@$pseudo"; }
    (cd "$dir" && GONOSUMDB=$nosumdb CGO_ENABLED=0 GOTOOLCHAIN=local \
       go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" .) >>"$glog" 2>&1 \
      || { tail -n 30 "$glog" >&2; die "go build of $name failed (log: $glog)"; }
    mv "$bin.tmp" "$bin"
  fi
  log "built $bin in $((SECONDS - t0))s"
}

# --- stand-ins ----------------------------------------------------------------
# build_standin REF NAME -- each one is skipped when its reference exists, built from this stand-in.
build_standin() {
  local ref=$1 name=$2 t0=$SECONDS ctx digest
  digest=$(standin_digest "$name")
  if [[ $(standin_label "$ref") == "$digest" ]] && ! ((force)); then
    log "cached: $ref"
    return 0
  fi
  have_image "$ref" && ! ((force)) && log "$ref was built from another version of $name/: building it again"
  ensure_base
  t0=$SECONDS
  local old_id
  old_id=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)
  log "building $ref (stand-in: $name/)"
  ctx=$(stage "$name")
  case $name in
    python)
      docker_build "$ref" "$ctx" --build-arg "PYTHON_MINOR=$PYTHON_MINOR" ;;
    postgres)
      docker_build "$ref" "$ctx" --build-arg "PG_MAJOR=$PG_MAJOR" ;;
    pgadmin)
      docker_build "$ref" "$ctx" --build-arg "PGADMIN_VERSION=$PGADMIN_VERSION" \
        --build-arg "PG_MAJOR=$PG_MAJOR" --build-arg "PYTHON_MINOR=$PYTHON_MINOR" ;;
    minio)
      local pins
      pins=$(minio_pins "$MINIO_RELEASE") \
        || die "no Go pseudo-versions known for MinIO $MINIO_RELEASE; add a row to minio_pins in $0"
      read -r minio_pseudo minio_commit mc_pseudo mc_commit mc_release <<<"$pins"
      go_binary minio github.com/minio/minio "$minio_pseudo" "$MINIO_RELEASE" "$minio_commit"
      go_binary mc github.com/minio/mc "$mc_pseudo" "$mc_release" "$mc_commit"
      install -m 755 "$BIN_DIR/minio" "$BIN_DIR/mc" "$ctx/"
      docker_build "$ref" "$ctx" --build-arg "MINIO_RELEASE=$MINIO_RELEASE" ;;
    seaweedfs)
      local weed_pins weed_pseudo weed_commit weed_bin
      weed_pins=$(seaweedfs_pins "$SEAWEEDFS_RELEASE") \
        || die "no Go pseudo-version known for SeaweedFS $SEAWEEDFS_RELEASE; add a row to seaweedfs_pins in $0"
      read -r weed_pseudo weed_commit <<<"$weed_pins"
      # `weed version` names the commit as the release image's does.
      weed_bin=$("$here/go-binary.sh" weed github.com/seaweedfs/seaweedfs/weed "$weed_pseudo" \
        "github.com/seaweedfs/seaweedfs/weed/util/version.COMMIT=${weed_commit:0:8}")
      install -m 755 "$weed_bin" "$ctx/weed"
      docker_build "$ref" "$ctx" --build-arg "SEAWEEDFS_RELEASE=$SEAWEEDFS_RELEASE" ;;
    caddy)
      local caddy_bin
      # Built as the main module, Caddy cannot find its own version in the
      # build information; CustomVersion is its documented override.
      caddy_bin=$("$here/go-binary.sh" caddy github.com/caddyserver/caddy/v2/cmd/caddy "v$CADDY_VERSION" \
        "github.com/caddyserver/caddy/v2.CustomVersion=v$CADDY_VERSION")
      install -m 755 "$caddy_bin" "$ctx/caddy"
      docker_build "$ref" "$ctx" --build-arg "CADDY_VERSION=$CADDY_VERSION" ;;
  esac
  # --force leaves the previous build untagged: drop it unless something uses it.
  if [[ -n $old_id && $old_id != "$(docker image inspect -f '{{.Id}}' "$ref")" ]]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
  fi
  log "built $ref in $((SECONDS - t0))s"
}

if ((list_only)); then
  printf '%s\n' "$MLFLOW_BASE_IMAGE" "$POSTGRES_IMAGE" "$MINIO_IMAGE" "$SEAWEEDFS_IMAGE" "$PGADMIN_IMAGE" "$CADDY_IMAGE"
  exit 0
fi

docker info >/dev/null 2>&1 || die "docker engine not reachable (run .ci/install-docker.sh)"
mkdir -p "$CACHE_DIR"
# One build.sh at a time per machine (parallel CI jobs would build twice).
exec 9>"$CACHE_DIR/build.lock"
if ! flock -n 9; then
  log "waiting for another build.sh to finish"
  flock 9
fi

build_standin "$MLFLOW_BASE_IMAGE" python
build_standin "$POSTGRES_IMAGE" postgres
build_standin "$MINIO_IMAGE" minio
build_standin "$SEAWEEDFS_IMAGE" seaweedfs
build_standin "$PGADMIN_IMAGE" pgadmin
build_standin "$CADDY_IMAGE" caddy
# A replaced base can only go once nothing is built on it any more.
if [[ -n $old_base_id && $old_base_id != "$(docker image inspect -f '{{.Id}}' "$BASE_REF")" ]]; then
  docker rmi "$old_base_id" >/dev/null 2>&1 || true
fi
log "done in $((SECONDS - t_start))s"
