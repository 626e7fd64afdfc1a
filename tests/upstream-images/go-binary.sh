#!/usr/bin/env bash
# Build one static Go program from the Go module proxy into the test-bed cache,
# for CI only: tests/upstream-images/go-binary.sh NAME PACKAGE VERSION [VAR=VALUE...]
#
#   NAME     file name under $TRACKSTACK_TESTBED_CACHE/bin (default cache:
#            /var/cache/trackstack-testbed)
#   PACKAGE  the main package, e.g. github.com/caddyserver/caddy/v2/cmd/caddy
#   VERSION  a version the proxy serves, e.g. v2.10.2
#   VAR=VALUE  string variables to set at link time (go build -ldflags -X)
#
# A binary already there is kept when its embedded build information (what
# `go version -m` reads) names that package at that version, so a second run
# builds nothing. Prints the binary's path on stdout; progress goes to stderr.
#
# `go install PACKAGE@VERSION` refuses a module whose go.mod has replace
# directives (SeaweedFS's does): then the package is built inside the module
# as the proxy serves it, as its main module (so the replacements apply), and
# NAME.from beside the binary records "PACKAGE VERSION", which its build
# information cannot (it says "(devel)").
set -euo pipefail

[[ $# -ge 3 ]] || { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
name=$1 pkg=$2 version=$3
shift 3
ldflags='-s -w'
for assignment in "$@"; do ldflags+=" -X $assignment"; done

CACHE_DIR=${TRACKSTACK_TESTBED_CACHE:-/var/cache/trackstack-testbed}
BIN_DIR=$CACHE_DIR/bin
LOG_DIR=$CACHE_DIR/logs
bin=$BIN_DIR/$name
export PATH=$PATH:/usr/local/go/bin

t_start=$SECONDS
log() { printf '[go-binary +%3ss] %s\n' "$((SECONDS - t_start))" "$*" >&2; }
die() { printf '[go-binary] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go is needed to build $name (Go >= 1.24)"

built_from() { # BIN -> "package version" from its build information, else from BIN.from
  local info
  info=$(go version -m "$1" 2>/dev/null | awk -F'\t' '$2 == "path" {p = $3} $2 == "mod" {v = $4} END {print p, v}')
  if [[ $info == *" (devel)" && -f $1.from ]]; then cat "$1.from"; else printf '%s\n' "$info"; fi
}
is_current() { [[ -x $bin && $(built_from "$bin") == "$pkg $version" ]]; }

mkdir -p "$BIN_DIR" "$LOG_DIR"
if is_current; then log "cached: $bin ($pkg@$version)"; printf '%s\n' "$bin"; exit 0; fi

# One build of a name at a time per machine (two CI jobs, a manual run).
exec 8>"$BIN_DIR/.$name.lock"
flock 8
if is_current; then log "cached: $bin ($pkg@$version)"; printf '%s\n' "$bin"; exit 0; fi

glog=$LOG_DIR/go-$name.log
log "go install $pkg@$version; the first build takes a few minutes"
tmp_bin=$(mktemp -d "$BIN_DIR/.$name.XXXXXX")
trap 'rm -rf "$tmp_bin"' EXIT
# Static (no cgo), no local paths in the binary, the toolchain that is here.
stamp=
if ! CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN=$tmp_bin \
     go install -trimpath -ldflags "$ldflags" "$pkg@$version" >"$glog" 2>&1; then
  # "... (in MODULE@VERSION): The go.mod file ... contains one or more replace directives"
  module=$(sed -n 's/.*(in \([^@ ]*\)@[^)]*):$/\1/p' "$glog" | head -n 1)
  if ! grep -q 'replace directives' "$glog" || [[ -z $module ]]; then
    tail -n 30 "$glog" >&2
    die "go install $pkg@$version failed (log: $glog)"
  fi
  log "$module has replace directives: building $pkg inside the module"
  dir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n $dir ]] || die "cannot download $module@$version (log: $glog)"
  main=.; [[ $pkg == "$module" ]] || main=./${pkg#"$module"/}
  # The module cache is read-only; only the binary is written, into $tmp_bin.
  if ! (cd "$dir" && CGO_ENABLED=0 GOTOOLCHAIN=local \
        go build -trimpath -ldflags "$ldflags" -o "$tmp_bin/${pkg##*/}" "$main") >>"$glog" 2>&1; then
    tail -n 30 "$glog" >&2
    die "go build of $pkg in $module@$version failed (log: $glog)"
  fi
  stamp="$pkg $version"
fi
rm -f "$bin.from"
mv -f "$tmp_bin/${pkg##*/}" "$bin"
[[ -z $stamp ]] || printf '%s\n' "$stamp" >"$bin.from"
is_current || die "$bin does not report $pkg $version after the build"
log "built $bin in $((SECONDS - t_start))s"
printf '%s\n' "$bin"
