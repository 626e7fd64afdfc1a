"""CPU: how busy the machine is, and how much CPU a stack's containers use while idle.

A container's CPU time is the counter its cgroup keeps (nanoseconds for cgroup v1's
`cpuacct.usage`, microseconds for cgroup v2's `usage_usec`); idle CPU is the growth of those
counters over a window, divided by the window: 1.0 is one core kept busy.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from bench import BenchError, say

CGROUP = Path("/sys/fs/cgroup")
# Where a container's CPU counter lives, by cgroup layout, for Docker's default cgroupfs and systemd drivers.
USAGE_FILES = (
    "cpuacct/docker/{id}/cpuacct.usage",  # v1, cpuacct mounted on its own (this test bed)
    "cpu,cpuacct/docker/{id}/cpuacct.usage",  # v1, the usual joint mount
    "system.slice/docker-{id}.scope/cpu.stat",  # v2, systemd driver
    "docker/{id}/cpu.stat",  # v2, cgroupfs driver
)


def parse_usage_ns(name: str, text: str) -> int:
    """Total CPU time in nanoseconds from the text of `cpuacct.usage` or `cpu.stat`."""
    if name == "cpuacct.usage":
        return int(text.strip())
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) * 1000
    raise ValueError(f"no usage_usec in {name}")


def cpu_time_ns(container_id: str, cgroup: Path = CGROUP) -> int:
    for pattern in USAGE_FILES:
        path = cgroup / pattern.format(id=container_id)
        if path.is_file():
            return parse_usage_ns(path.name, path.read_text(encoding="utf-8"))
    raise BenchError(
        f"no CPU counter for container {container_id[:12]} (has it stopped?) under {cgroup};"
        f" tried {', '.join(USAGE_FILES)}"
    )


def cores_used(before: Mapping[str, int], after: Mapping[str, int], seconds: float) -> dict[str, float]:
    """Cores each container kept busy between two samples of its CPU counter, `seconds` apart."""
    if seconds <= 0:
        raise ValueError("the window must be longer than zero")
    if set(before) != set(after):
        raise BenchError(f"containers changed during the window: {sorted(set(before) ^ set(after))}")
    used = {}
    for name, start in before.items():
        delta = after[name] - start
        if delta < 0:
            raise BenchError(f"{name}'s CPU counter went back: it restarted during the window")
        used[name] = delta / 1e9 / seconds
    return used


# The engine's share of an idle stack: every healthcheck is a `docker exec`, whose cost lands in
# dockerd, containerd and the container's shim (runc is short-lived: its time reaches the shim
# when reaped), not in the container's cgroup. Other engines on the machine (a swarm test bed's
# namespaced daemons) and other stacks' shims are not this stack's cost, so only the engine
# behind DOCKER_PIDFILE, its containerd and the shims of the stack's containers count.
DOCKER_PIDFILE = Path("/var/run/docker.pid")


def _processes(proc: Path) -> dict[int, tuple[str, int, list[str], int]]:
    """pid -> (name, parent pid, command line, CPU ticks of it and its reaped children)."""
    found = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text(encoding="utf-8")
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # the process ended meanwhile
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        ticks = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        found[int(stat.parent.name)] = (name, int(fields[1]), [a.decode(errors="replace") for a in argv], ticks)
    return found


def engine_cpu_ns(container_ids: set[str], proc: Path = Path("/proc"), pidfile: Path = DOCKER_PIDFILE) -> int:
    """CPU time, in nanoseconds, of the Docker engine and of the shims of `container_ids`."""
    processes = _processes(proc)
    try:
        dockerd = int(pidfile.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        raise BenchError(f"cannot read the engine's pid from {pidfile}") from None
    # containerd is dockerd's child when dockerd manages it, else a service of its own (parent 1).
    own = [pid for pid, (name, parent, _, _) in processes.items() if name == "containerd" and parent == dockerd]
    containerd = own or [pid for pid, (name, parent, _, _) in processes.items() if name == "containerd" and parent == 1]
    shims = [
        pid
        for pid, (name, _, argv, _) in processes.items()
        if name.startswith("containerd-shim") and "-id" in argv[:-1] and argv[argv.index("-id") + 1] in container_ids
    ]
    if sys.platform == "win32":  # no /proc and no clock ticks: the benchmark measures Linux engines
        raise RuntimeError("the benchmark reads /proc: it runs on Linux")
    ticks = sum(processes[pid][3] for pid in {dockerd, *containerd, *shims} if pid in processes)
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def stack_cpu_ns(containers: Mapping[str, str]) -> dict[str, int]:
    """CPU time so far, in nanoseconds, of each container (id -> service) and of the engine on
    their behalf ("engine": their healthchecks' `docker exec`s)."""
    counters = {service: cpu_time_ns(container_id) for container_id, service in containers.items()}
    return counters | {"engine": engine_cpu_ns(set(containers))}


def idle_cpu(containers: Mapping[str, str], seconds: float) -> dict[str, float]:
    """Per service, cores used over `seconds` by the containers (id -> service) of an idle stack,
    and by the engine on its behalf (only this stack should run)."""
    started, before = time.monotonic(), stack_cpu_ns(containers)
    time.sleep(seconds)
    after, elapsed = stack_cpu_ns(containers), time.monotonic() - started
    return cores_used(before, after, elapsed)


def machine_busy(seconds: float = 2.0) -> float:
    """Fraction of the machine's CPU time spent busy over the next `seconds`."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_for_quiet(max_busy: float, timeout: float = 300.0) -> float:
    """Other people's work on a shared machine skews every figure: wait for a lull; return how busy it was."""
    if max_busy >= 1:
        return machine_busy(0.5)
    deadline = time.monotonic() + timeout
    busy = machine_busy()
    announced = False
    while busy > max_busy and time.monotonic() < deadline:
        if not announced:
            say(f"the machine is {busy:.0%} busy; waiting up to {timeout:.0f}s for it to drop below {max_busy:.0%}")
            announced = True
        busy = machine_busy(5.0)
    return busy
