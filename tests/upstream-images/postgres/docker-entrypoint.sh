#!/usr/bin/env bash
# Entrypoint of the postgres stand-in (test bed only). Written from the
# official image's documentation, not from its script:
#   - POSTGRES_PASSWORD is required unless POSTGRES_HOST_AUTH_METHOD=trust;
#     POSTGRES_USER (default postgres), POSTGRES_DB (default = user),
#     POSTGRES_INITDB_ARGS; each also as *_FILE (docker secrets);
#   - initdb only when $PGDATA is empty, then /docker-entrypoint-initdb.d/
#     (*.sql, *.sql.gz, *.sh, sorted) against a socket-only temporary server;
#   - started as root, it hands the data over and runs as postgres; started as
#     another user (uid 999, say), it skips that and runs as that user;
#   - the real server runs as the unprivileged postgres user; extra arguments
#     (`postgres -c x=y` or just `-c x=y`) are passed through.
set -Eeuo pipefail

me=postgres-standin
log() { printf '%s: %s\n' "$me" "$*"; }
die() { printf '%s: error: %s\n' "$me" "$*" >&2; exit 1; }

# VAR from $VAR or from the file named by $VAR_FILE (never both), else DEFAULT.
env_or_file() {
  local var=$1 default=${2:-} file_var="$1_FILE"
  local value=${!var:-} file=${!file_var:-}
  [[ -n $value && -n $file ]] && die "both $var and $file_var are set; use one"
  if [[ -n $file ]]; then
    [[ -r $file ]] || die "$file_var points to '$file', which is not readable"
    value=$(<"$file")
  fi
  export "$var=${value:-$default}"
  unset "$file_var"
}

# `docker run IMAGE -c foo=bar` means "postgres -c foo=bar".
if [[ $# -eq 0 || ${1:0:1} == - ]]; then
  set -- postgres "$@"
fi

# Anything else (bash, psql, ...) runs untouched.
if [[ $1 != postgres ]]; then
  exec "$@"
fi

if [[ $(id -u) == 0 ]]; then
  # A fresh named volume or bind mount may be root-owned: hand it over, then
  # restart this script as postgres so that nothing below runs as root.
  mkdir -p "$PGDATA"
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres {} +
  chmod 700 "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

# Started as a non-root user (`--user 999`, Kubernetes' runAsUser with fsGroup): nothing to hand
# over, but the data folder may be missing, or group-writable after a volume's ownership change,
# which postgres refuses; as upstream documents, try to make it private and carry on either way.
mkdir -p "$PGDATA"
chmod 700 "$PGDATA" 2>/dev/null || :

# `postgres --version` and friends only print something: no cluster needed.
wants_cluster=1
for arg in "$@"; do
  case $arg in -V|--version|'-?'|--help|-C|--describe-config) wants_cluster=0 ;; esac
done

if ((wants_cluster)) && [[ ! -s $PGDATA/PG_VERSION ]]; then
  env_or_file POSTGRES_USER postgres
  env_or_file POSTGRES_PASSWORD
  env_or_file POSTGRES_DB "$POSTGRES_USER"
  env_or_file POSTGRES_INITDB_ARGS
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

  if [[ -z $POSTGRES_PASSWORD && $auth != trust ]]; then
    die "the database is uninitialized and POSTGRES_PASSWORD is empty.
  Set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty value for the
  superuser '$POSTGRES_USER', or set POSTGRES_HOST_AUTH_METHOD=trust to allow
  every connection without a password (never do that outside a sandbox)."
  fi

  log "initializing a new cluster in $PGDATA (superuser $POSTGRES_USER)"
  read -r -a extra_initdb_args <<<"$POSTGRES_INITDB_ARGS"
  pwfile=
  if [[ -n $POSTGRES_PASSWORD ]]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  fi
  # initdb's defaults keep the socket and loopback lines at "trust", as the
  # official image does; remote hosts get $auth below.
  initdb --username="$POSTGRES_USER" ${pwfile:+--pwfile="$pwfile"} "${extra_initdb_args[@]}"
  [[ -n $pwfile ]] && rm -f "$pwfile"
  printf '\n# added by the container entrypoint\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

  # Temporary server: unix socket only, so nobody can connect over TCP before
  # the init scripts are done (hence readiness probes use -h 127.0.0.1).
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start >/dev/null
  export PGPASSWORD=${PGPASSWORD:-$POSTGRES_PASSWORD} PGHOST=/var/run/postgresql PGPORT=5432
  sql=(psql -X -q -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password)

  exists=$("${sql[@]}" -d postgres -tA -v db="$POSTGRES_DB" \
             <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")
  if [[ -z $exists ]]; then
    log "creating database $POSTGRES_DB"
    "${sql[@]}" -d postgres -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi

  shopt -s nullglob
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh)
        # Executable scripts run in their own process; others are sourced so
        # they can use this script's environment, as upstream documents.
        if [[ -x $f ]]; then log "running $f"; "$f"
        else
          log "sourcing $f"
          set +u
          # shellcheck disable=SC1090  # a user-provided init script
          . "$f"
          set -u
        fi ;;
      *.sql)    log "running $f"; "${sql[@]}" -d "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | "${sql[@]}" -d "$POSTGRES_DB" ;;
      *)        log "ignoring $f" ;;
    esac
  done
  shopt -u nullglob

  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  unset PGPASSWORD PGHOST PGPORT
  log "init complete; starting postgres"
fi

exec "$@"
