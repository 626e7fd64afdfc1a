#!/bin/sh
# Entrypoint of the MinIO stand-in (test bed only), written from the image's
# documented behaviour: any argument list is a minio command line, so compose's
# `command: server /data --console-address :9001` works as it does upstream.
#
# Credentials need nothing here: minio reads MINIO_ROOT_USER/MINIO_ROOT_PASSWORD
# and their *_FILE variants (absolute paths, or names under /run/secrets/)
# itself, and refuses a user < 3 or a password < 8 characters.
set -e

if [ "${1:-}" != minio ]; then
  set -- minio "$@"
fi

exec "$@"
