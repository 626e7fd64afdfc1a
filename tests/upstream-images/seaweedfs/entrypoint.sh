#!/bin/sh
# Entrypoint of the SeaweedFS stand-in (test bed only), written from the
# official image's documented behaviour:
#  - started as root, it gives /data to user seaweed (only when the owner
#    differs: no recursive chown on every start) and runs as that user;
#  - the first argument names the part to run; `mini`, `server`, `master`,
#    `volume` and `filer` store their data under /data unless a flag says
#    otherwise, and log to stderr; anything else is a plain weed command line;
#  - Go's FIPS 140-3 mode is on unless GODEBUG already says fips140=...
set -e

if [ "$(id -u)" = 0 ]; then
  if [ "$(stat -c %u:%g /data)" != 1000:1000 ]; then
    chown -R seaweed:seaweed /data \
      || echo "warning: cannot give /data to user seaweed; writes may fail" >&2
  fi
  exec setpriv --reuid=seaweed --regid=seaweed --init-groups "$0" "$@"
fi

case ",${GODEBUG:-}," in
  *,fips140=*) ;;
  *) export GODEBUG="${GODEBUG:+$GODEBUG,}fips140=on" ;;
esac

has_flag() { # NAME ARGS... -> whether -NAME or --NAME (with or without =value) is among ARGS
  name=$1
  shift
  for arg in "$@"; do
    case $arg in -"$name" | --"$name" | -"$name"=* | --"$name"=*) return 0 ;; esac
  done
  return 1
}

[ $# -gt 0 ] || set -- mini
part=$1
shift
case $part in
  mini)
    has_flag dir "$@" || set -- -dir=/data "$@" ;;
  server)
    has_flag volume.max "$@" || set -- -volume.max=0 "$@"
    set -- -dir=/data -master.volumeSizeLimitMB=1024 "$@" ;;
  master)
    set -- -mdir=/data -volumeSizeLimitMB=1024 "$@" ;;
  volume)
    has_flag max "$@" || set -- -max=0 "$@"
    set -- -dir=/data "$@" ;;
  filer | s3 | shell | admin | worker) ;;
  *)
    exec /usr/bin/weed "$part" "$@" ;;
esac
exec /usr/bin/weed -logtostderr=true "$part" "$@"
