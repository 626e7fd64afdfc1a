#!/usr/bin/env bash
# Entrypoint of the pgAdmin 4 stand-in (test bed only), written from pgAdmin's
# "Container Deployment" documentation rather than from the official script.
# First start = no /var/lib/pgadmin/pgadmin4.db yet:
#   validate PGADMIN_DEFAULT_EMAIL the way pgAdmin does, create the config DB
#   with PGADMIN_DEFAULT_PASSWORD(_FILE), load PGADMIN_SERVER_JSON_FILE and
#   PGADMIN_PREFERENCES_JSON_FILE if present, copy PGPASS_FILE to the user's
#   storage directory. Later starts: reload servers only when
#   PGADMIN_REPLACE_SERVERS_ON_STARTUP=True. Then gunicorn replaces this shell.
set -euo pipefail

me=pgadmin-standin
log() { printf '%s: %s\n' "$me" "$*"; }
die() { printf '%s: error: %s\n' "$me" "$*" >&2; exit 1; }

py=/venv/bin/python3
setup=(/venv/bin/python3 /pgadmin4/setup.py)
data=/var/lib/pgadmin

# $VAR or the content of the file $VAR_FILE names (docker secrets), never both.
env_or_file() {
  local var=$1 file_var="$1_FILE"
  local value=${!var:-} file=${!file_var:-}
  [[ -n $value && -n $file ]] && die "both $var and $file_var are set; use one"
  if [[ -n $file ]]; then
    [[ -r $file ]] || die "$file_var points to '$file', which is not readable"
    value=$(<"$file")
  fi
  export "$var=$value"
  unset "$file_var"
}
env_or_file PGADMIN_DEFAULT_PASSWORD
[[ -n ${PGADMIN_CONFIG_CONFIG_DATABASE_URI_FILE:-} ]] && env_or_file PGADMIN_CONFIG_CONFIG_DATABASE_URI

# config_distro.py: written once, only while it is empty, so that a mapped
# file wins and restarts don't change it (documented upstream behaviour).
export CONFIG_DISTRO_FILE_PATH=${PGADMIN_CUSTOM_CONFIG_DISTRO_FILE:-/pgadmin4/config_distro.py}
if [[ ! -s $CONFIG_DISTRO_FILE_PATH ]]; then
  {
    echo "# Written by the container entrypoint on first start."
    cat /pgadmin4/config_distro.py.pypi 2>/dev/null || true
    echo "SERVER_MODE = True"
    echo "DATA_DIR = '$data'"
    echo "LOG_FILE = '/dev/null'  # the console log goes to the container log"
    echo "CA_FILE = '/etc/ssl/certs/ca-certificates.crt'"
    echo "DEFAULT_BINARY_PATHS = {'pg': '/usr/local/pgsql-$PG_MAJOR', 'pg-$PG_MAJOR': '/usr/local/pgsql-$PG_MAJOR'}"
    # PGADMIN_CONFIG_<NAME>=<python literal> -> NAME = <python literal>
    while IFS= read -r name; do
      printf '%s = %s\n' "${name#PGADMIN_CONFIG_}" "${!name}"
    done < <(compgen -e | grep '^PGADMIN_CONFIG_.' || true)
  } >"$CONFIG_DISTRO_FILE_PATH"
fi

# From the environment, as the documented variable says: importing pgAdmin's config.py imports
# all of pgAdmin (seconds of CPU), which the official first start does only to create its database.
server_mode=True
[[ ${PGADMIN_CONFIG_SERVER_MODE:-} == False ]] && server_mode=False
servers_json=${PGADMIN_SERVER_JSON_FILE:-/pgadmin4/servers.json}
prefs_json=${PGADMIN_PREFERENCES_JSON_FILE:-/pgadmin4/preferences.json}
email=${PGADMIN_DEFAULT_EMAIL:-}

load_servers() { # [--replace]
  if [[ $server_mode == True ]]; then
    "${setup[@]}" load-servers "$servers_json" --user "$email" "$@"
  else
    "${setup[@]}" load-servers "$servers_json" "$@"
  fi
}

copy_pgpass() {
  [[ -n ${PGPASS_FILE:-} && -f $PGPASS_FILE ]] || return 0
  local dir=$data
  if [[ $server_mode == True ]]; then
    # pgAdmin's storage directory name for a user (utils/paths.py)
    local user=$email
    [[ $user =~ ^[0-9] ]] && user=pga_user_$user
    user=${user//@/_}; user=${user//\//slash}; user=${user//\\/slash}
    dir=$data/storage/$user
  fi
  install -d -m 700 "$dir"
  install -m 600 "$PGPASS_FILE" "$dir/.pgpass"
  log "copied PGPASS_FILE to $dir/.pgpass"
}

if [[ ! -f $data/pgadmin4.db ]]; then
  if [[ -z $email || -z $PGADMIN_DEFAULT_PASSWORD ]]; then
    die "PGADMIN_DEFAULT_EMAIL and PGADMIN_DEFAULT_PASSWORD (or PGADMIN_DEFAULT_PASSWORD_FILE) must be set to create the initial pgAdmin account"
  fi
  # pgAdmin's own validator, so special-use domains (.local, localhost, .test, ...)
  # are refused unless ALLOW_SPECIAL_EMAIL_DOMAINS (or CHECK_EMAIL_DELIVERABILITY,
  # GLOBALLY_DELIVERABLE) say otherwise. Like the official image: the validator's
  # module alone, given those settings from their PGADMIN_CONFIG_* variables
  # (pgAdmin's defaults otherwise). Through config.py or the `pgadmin` package it
  # would import all of pgAdmin: seconds of CPU the official start does not spend.
  if ! "$py" -c '
import ast, importlib.util, sys
spec = importlib.util.spec_from_file_location("validation_utils", "/pgadmin4/pgadmin/utils/validation_utils.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
names = ("CHECK_EMAIL_DELIVERABILITY", "ALLOW_SPECIAL_EMAIL_DOMAINS", "GLOBALLY_DELIVERABLE")
settings = {name: ast.literal_eval(value) for name, value in zip(names, sys.argv[2:])}
sys.exit(0 if module.validate_email(sys.argv[1], settings) else 1)' "$email" \
      "${PGADMIN_CONFIG_CHECK_EMAIL_DELIVERABILITY:-False}" \
      "${PGADMIN_CONFIG_ALLOW_SPECIAL_EMAIL_DOMAINS:-[]}" \
      "${PGADMIN_CONFIG_GLOBALLY_DELIVERABLE:-True}"; then
    die "'$email' does not appear to be a valid email address; set PGADMIN_DEFAULT_EMAIL to a valid one (special-use domains need PGADMIN_CONFIG_ALLOW_SPECIAL_EMAIL_DOMAINS)"
  fi

  log "creating the configuration database for $email"
  PGADMIN_SETUP_EMAIL=$email PGADMIN_SETUP_PASSWORD=$PGADMIN_DEFAULT_PASSWORD \
    "${setup[@]}" setup-db
  if [[ -f $servers_json ]]; then
    log "loading servers from $servers_json"
    load_servers
  fi
  if [[ -f $prefs_json ]]; then
    log "loading preferences from $prefs_json"
    if [[ $server_mode == True ]]; then
      "${setup[@]}" set-prefs "$email" --input-file "$prefs_json"
    else
      "${setup[@]}" set-prefs "$(cd /pgadmin4 && "$py" -c 'import config; print(config.DESKTOP_USER)')" --input-file "$prefs_json"
    fi
  fi
  copy_pgpass
elif [[ ${PGADMIN_REPLACE_SERVERS_ON_STARTUP:-} == True && -f $servers_json ]]; then
  [[ -n $email || $server_mode != True ]] \
    || die "PGADMIN_REPLACE_SERVERS_ON_STARTUP=True needs PGADMIN_DEFAULT_EMAIL (the servers' owner)"
  log "replacing servers from $servers_json"
  load_servers --replace
  copy_pgpass
fi

# One worker only: pgAdmin keeps sessions in process. The timeout follows the
# session lifetime, as upstream does.
timeout=$(cd /pgadmin4 && "$py" -c 'import config; print(config.SESSION_EXPIRATION_TIME * 86400)')
address=${PGADMIN_LISTEN_ADDRESS:-[::]}
# Without an IPv6 stack "[::]" cannot be bound; fall back to IPv4.
[[ $address == '[::]' && ! -e /proc/net/if_inet6 ]] && address=0.0.0.0
tls=()
if [[ -n ${PGADMIN_ENABLE_TLS:-} ]]; then
  tls=(--keyfile /certs/server.key --certfile /certs/server.cert)
  port=${PGADMIN_LISTEN_PORT:-443}
else
  port=${PGADMIN_LISTEN_PORT:-80}
fi

log "starting gunicorn on $address:$port"
exec /venv/bin/gunicorn \
  --bind "$address:$port" --workers 1 --threads "${GUNICORN_THREADS:-25}" \
  --timeout "$timeout" --limit-request-line "${GUNICORN_LIMIT_REQUEST_LINE:-8190}" \
  --access-logfile "${GUNICORN_ACCESS_LOGFILE:--}" "${tls[@]}" \
  --chdir /pgadmin4 pgAdmin4:app
