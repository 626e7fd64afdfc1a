# shellcheck shell=bash
# Sourced by the test beds (tests/swarm/testbed.sh, tests/k8s/cluster.sh).

# close_fds -- close every descriptor above 2 of this (sub)shell: a daemon started from it must
# not hold a lock of the bed script's, nor of its caller's (`flock FILE cluster.sh up` otherwise
# stays locked for as long as the daemons run).
close_fds() {
  local fd
  for fd in "/proc/$BASHPID/fd/"*; do
    fd=${fd##*/}
    if ((fd > 2)); then eval "exec $fd>&-"; fi
  done
}
