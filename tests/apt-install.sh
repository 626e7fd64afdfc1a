#!/usr/bin/env bash
# Install Debian packages for CI and the test beds, one apt run at a time.
# CI builds the Kubernetes bed in the background while the stand-in images are built, and both
# may need packages on a fresh machine; a second apt-get at once fails at the start
# ("Could not get lock /var/lib/apt/lists/lock"). Every script of ours that installs packages
# comes through here and waits for its turn on one lock file; apt's DPkg::Lock::Timeout waits
# for anyone else's apt (unattended upgrades). The lock is held by `flock` itself (-o), never
# by what apt starts: a daemon a package starts must not keep it.
# usage: tests/apt-install.sh [apt-get install options] PACKAGE...
set -euo pipefail

lock=/var/lock/trackstack-apt.lock
if [[ ${TRACKSTACK_APT_LOCKED:-} != 1 ]]; then
  TRACKSTACK_APT_LOCKED=1 exec flock -o -w 1800 "$lock" "$0" "$@"
fi
apt_get=(apt-get -o DPkg::Lock::Timeout=600)
"${apt_get[@]}" update -qq
DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq "$@" >/dev/null
