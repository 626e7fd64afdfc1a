"""The benchmark's pure parts: statistics, targets, the table, CPU arithmetic, the baseline's client view."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import BenchError
from bench.cpu import cores_used, cpu_time_ns, engine_cpu_ns, parse_usage_ns
from bench.paired import (
    SIDE_BY_SIDE_OFFSET,
    bootstrap_median,
    pair_order,
    paired_stats,
    quartiles,
    ratios,
    side_by_side_env,
)
from bench.probes import probes
from bench.report import Row, Target, cell, fmt, invoke_up_phases, ratio_text, render_table, rows, stats
from bench.stacks import (
    BASELINE_PROJECT,
    COURSE_PORTS,
    baseline_dockerfile,
    check_pins_agree,
    client_view,
)
from trackstack.paths import constraints_file
from trackstack.services import ENDPOINTS, SERVICE_NAMES
from trackstack.settings import Settings

# -- statistics and formatting ---------------------------------------------------------


def test_stats_of_samples() -> None:
    assert stats([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}
    assert stats([]) == {}


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.1613, "0.161"), (5.2, "5.20"), (25.94, "25.9"), (5254.4, "5,254"), (1000.0, "1,000")],
)
def test_fmt_keeps_about_three_figures(value: float, text: str) -> None:
    assert fmt(value) == text


def test_cell_shows_range_only_for_several_samples() -> None:
    assert cell(stats([25.3, 25.9, 26.9])) == "25.9 [25.3-26.9]"
    assert cell(stats([12.04])) == "12.0"
    assert cell(None) == "-"
    assert cell({}) == "-"


def test_ratio_text() -> None:
    assert ratio_text(1.1949) == "1.19x"
    assert ratio_text(None) == "-"


# -- targets and rows ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "ours", "theirs", "met"),
    [
        (Target("ratio_at_most", 1.1), 11.0, 10.0, True),
        (Target("ratio_at_most", 1.1), 11.5, 10.0, False),
        (Target("ratio_at_least", 1.0), 0.9, 1.0, False),
        (Target("ratio_at_least", 1.0), 1.0, 1.0, True),
        (Target("at_most", 2.0), 1.9, None, True),
        (Target("at_most", 2.0), 2.1, 0.5, False),
        (Target("extra_at_most", 5.0), 14.0, 9.5, True),
        (Target("extra_at_most", 5.0), 15.0, 9.5, False),
        (Target("ratio_at_most", 1.1), 1.0, None, None),
        (Target("ratio_at_most", 1.1), 1.0, 0.0, None),
    ],
)
def test_target_met(target: Target, ours: float, theirs: float | None, met: bool | None) -> None:
    assert target.met(ours, theirs) is met


def test_target_text() -> None:
    assert Target("ratio_at_most", 0.8).text("s") == "<= 0.8x"
    assert Target("ratio_at_least", 1.5).text("metrics/s") == ">= 1.5x"
    assert Target("ratio_at_least", 1).text("metrics/s") == ">= 1.0x"
    assert Target("at_most", 2).text("s") == "<= 2 s"
    assert Target("extra_at_most", 5).text("% of a core") == "<= comparison + 5"


def test_row_summary_ratio_of_medians() -> None:
    row = Row("x", "orchestration, warm", "s", "invoke up", "compose", Target("ratio_at_most", 1.1))
    row.samples += [12.0, 13.0, 12.2]
    row.compared += [8.0, 8.2, 8.3]
    summary = row.summary()
    assert summary["ratio"] == pytest.approx(12.2 / 8.2)
    assert summary["met"] is False
    assert summary["target"] == "<= 1.1x"
    assert summary["comparison"]["samples"] == [8.0, 8.2, 8.3]


def test_row_without_samples_has_no_ratio_and_no_verdict() -> None:
    summary = rows()["tput1"].summary()
    assert summary["ratio"] is None
    assert summary["met"] is None


def test_row_without_comparison() -> None:
    row = rows()["smoke"]
    row.samples.append(3.2)
    summary = row.summary()
    assert summary["comparison"] is None
    assert summary["ratio"] is None


def test_every_row_has_a_comparison_and_a_target_but_smoke() -> None:
    table = rows()
    assert {"up_running", "idle_cpu"} <= set(table)
    for key, row in table.items():
        assert (row.theirs == "") == (key == "smoke")
        assert (row.target is None) == (key == "smoke")


def test_render_table_aligns_columns() -> None:
    up = rows()["up_running"]
    up.samples += [9.8, 10.4]
    up.compared += [0.91, 0.95]
    idle = rows()["idle_cpu"]
    idle.samples.append(12.0)
    text = render_table({"up_running": up.summary(), "idle_cpu": idle.summary()})
    header, first, second = text.splitlines()
    assert header.split() == ["row", "unit", "trackstack", "comparison", "ratio", "target", "met"]
    assert first.split("  ")[0] == "up on a running stack"
    assert "10.1 [9.80-10.4]" in first
    assert "10.86x" in first  # 10.1 / 0.93
    assert first.rstrip().endswith("NO")
    assert second.startswith("idle CPU")
    assert second.rstrip().endswith("-")  # no comparison: no verdict on an additive target
    assert first.index("10.1") == header.index("trackstack")


def test_invoke_up_phases_are_medians_per_state() -> None:
    runs: list[dict[str, Any]] = [
        {"what": "trackstack cold", "seconds": {"stack_healthy": 20.0, "seeded": 26.0}},
        {"what": "trackstack cold", "seconds": {"stack_healthy": 22.0, "seeded": 30.0}},
        {"what": "trackstack warm", "seconds": {"stack_healthy": 10.0, "seeded": 12.0}},
        {"what": "baseline cold", "seconds": {"all": 22.0}},
        {"what": "trackstack, idle", "window": 30},
        {"what": "trackstack up, running", "seconds": 9.5},
    ]
    assert invoke_up_phases(runs) == {
        "cold": {"stack_healthy": 21.0, "seeding": 7.0},
        "warm": {"stack_healthy": 10.0, "seeding": 2.0},
    }


# -- CPU arithmetic --------------------------------------------------------------------


def test_cores_used_per_container() -> None:
    before = {"mlflow": 1_000_000_000, "postgres": 500_000_000}
    after = {"mlflow": 4_000_000_000, "postgres": 800_000_000}
    used = cores_used(before, after, 30.0)
    assert used == pytest.approx({"mlflow": 0.1, "postgres": 0.01})
    assert 100 * sum(used.values()) == pytest.approx(11.0)  # percent of one core


def test_cores_used_refuses_a_changed_set_of_containers() -> None:
    with pytest.raises(BenchError, match="changed"):
        cores_used({"a": 1, "b": 1}, {"a": 2}, 1.0)


def test_cores_used_refuses_a_counter_that_went_back() -> None:
    with pytest.raises(BenchError, match="restarted"):
        cores_used({"a": 10}, {"a": 5}, 1.0)


def test_cores_used_needs_a_window() -> None:
    with pytest.raises(ValueError, match="window"):
        cores_used({}, {}, 0)


def test_parse_usage_v1_and_v2() -> None:
    assert parse_usage_ns("cpuacct.usage", "8373553909\n") == 8_373_553_909
    stat = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
    assert parse_usage_ns("cpu.stat", stat) == 1_500_000
    with pytest.raises(ValueError, match="usage_usec"):
        parse_usage_ns("cpu.stat", "user_usec 1\n")


@pytest.mark.parametrize(
    ("layout", "text", "ns"),
    [
        ("cpuacct/docker/{id}/cpuacct.usage", "42\n", 42),
        ("cpu,cpuacct/docker/{id}/cpuacct.usage", "43\n", 43),
        ("system.slice/docker-{id}.scope/cpu.stat", "usage_usec 7\n", 7000),
    ],
)
def test_cpu_time_found_in_each_cgroup_layout(tmp_path: Path, layout: str, text: str, ns: int) -> None:
    path = tmp_path / layout.format(id="abc")
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    assert cpu_time_ns("abc", cgroup=tmp_path) == ns


def test_cpu_time_of_an_unknown_container_names_what_it_tried(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"cpuacct/docker/\{id\}"):
        cpu_time_ns("abc", cgroup=tmp_path)


# -- the baseline in trackstack's model ------------------------------------------------------


def test_client_view_of_the_baseline(settings: Settings) -> None:
    values = {
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "pg-pw",
        "MINIO_ACCESS_KEY": "minioadmin",
        "MINIO_SECRET_ACCESS_KEY": "minio-pw",
    }
    view = client_view(settings, values)
    assert view.compose_project_name == BASELINE_PROJECT
    assert sorted(view.ports.values()) == sorted(COURSE_PORTS)
    assert view.mlflow_url == "http://127.0.0.1:5001"
    assert view.url("POSTGRES_PORT") == "postgresql://postgres@127.0.0.1:5432/mlflow"
    assert view.minio_root_password.get_secret_value() == "minio-pw"
    assert view.mlflow_image == f"{BASELINE_PROJECT}-mlflow:{settings.mlflow_version}"
    assert settings.compose_project_name != BASELINE_PROJECT  # the original is untouched


def test_probes_cover_every_service_and_the_bucket(settings: Settings) -> None:
    assert set(probes(settings)) == {*SERVICE_NAMES, "bucket"}


def test_engine_cpu_counts_this_engine_and_the_stacks_shims_only(tmp_path: Path) -> None:
    def process(pid: int, parent: int, argv: list[str], utime: int, stime: int, cutime: int, cstime: int) -> None:
        (tmp_path / str(pid)).mkdir()
        fields = ["S", str(parent), "1", "1", "0", "-1", "0", "0", "0", "0", "0", str(utime), str(stime),
                  str(cutime), str(cstime), "20", "0"]  # fmt: skip
        name = Path(argv[0]).name[:15]
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({name}) {' '.join(fields)}\n")
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    process(10, 1, ["dockerd"], 100, 50, 0, 0)
    process(11, 10, ["containerd", "--config", "c.toml"], 20, 0, 0, 0)
    process(
        12, 1, ["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", "ours", "-address", "a"], 5, 5, 30, 10
    )
    process(13, 1, ["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", "theirs"], 500, 0, 0, 0)
    process(14, 1, ["dockerd", "--data-root", "/elsewhere"], 700, 0, 0, 0)  # another engine on the machine
    process(15, 14, ["containerd", "--config", "other.toml"], 300, 0, 0, 0)
    process(16, 12, ["postgres"], 999, 999, 0, 0)  # a container's process: its cgroup counts it
    pidfile = tmp_path / "docker.pid"
    pidfile.write_text("10\n")
    if sys.platform == "win32":
        pytest.skip("the benchmark reads /proc: Linux only")
    tick = os.sysconf("SC_CLK_TCK")
    assert engine_cpu_ns({"ours"}, tmp_path, pidfile) == (150 + 20 + 50) * 1_000_000_000 // tick


# -- paired throughput -----------------------------------------------------------------


def test_pairs_alternate_which_stack_goes_first() -> None:
    assert [pair_order(i) for i in range(4)] == [(0, 1), (1, 0), (0, 1), (1, 0)]


def test_ratios_are_per_pair() -> None:
    assert ratios([2.0, 3.0, 4.0], [1.0, 3.0, 8.0]) == [2.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="not pairs"):
        ratios([1.0], [1.0, 2.0])


def test_quartiles_stay_within_the_samples() -> None:
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 4.0)
    assert quartiles([0.9]) == (0.9, 0.9)


def test_bootstrap_interval_holds_the_median_and_is_repeatable() -> None:
    values = [0.90, 0.95, 0.97, 0.99, 1.00, 1.01, 1.02, 1.04, 1.10, 1.30]
    low, high = bootstrap_median(values)
    assert min(values) <= low <= 1.005 <= high <= max(values)
    assert bootstrap_median(values) == (low, high)
    assert bootstrap_median([1.0, 1.0, 1.0]) == (1.0, 1.0)


def test_paired_row_ratio_is_the_median_of_pair_ratios() -> None:
    row = rows()["tput4"]
    # The stacks' medians are equal (ratio of medians 1.0), but trackstack lost every pair but one.
    row.samples += [100.0, 200.0, 300.0, 400.0, 500.0]
    row.compared += [110.0, 220.0, 300.0, 440.0, 550.0]
    summary = row.summary()
    assert summary["ratio"] == pytest.approx(100 / 110)
    assert summary["pairs"]["n"] == 5
    assert summary["pairs"]["q3"] == pytest.approx(100 / 110)
    assert summary["met"] is False
    assert ratio_text(summary["ratio"], summary["pairs"]) == "0.91x [0.91-0.91]"


def test_paired_stats_of_no_pairs() -> None:
    assert paired_stats([], []) == {}
    assert rows()["tput1"].summary()["ratio"] is None


def test_side_by_side_env_moves_every_port_and_nothing_else(tmp_path: Path) -> None:
    source = tmp_path / "env"
    source.write_text(
        "# ports\nMLFLOW_PORT=5001\nPGADMIN_PORT=5051\nMINIO_API_PORT=9000\nMINIO_CONSOLE_PORT=9001\n"
        "POSTGRES_PORT=5432\nCOMPOSE_PROJECT_NAME=tsbench\nPOSTGRES_PASSWORD=s3cret=yes\n",
        encoding="utf-8",
    )
    target = tmp_path / "side"
    side_by_side_env(source, target)
    text = target.read_text(encoding="utf-8")
    for endpoint in ENDPOINTS:
        assert f"{endpoint.port_key}={endpoint.course_port + SIDE_BY_SIDE_OFFSET}\n" in text
    assert "COMPOSE_PROJECT_NAME=tsbench\nPOSTGRES_PASSWORD=s3cret=yes\n" in text
    assert text.startswith("# ports\n")
    assert target.stat().st_mode & 0o077 == 0


# -- the swarm row (bench/swarm.py) ---------------------------------------------------


def test_swarm_figures_side_by_side_with_the_ratio_of_pairs() -> None:
    from bench.swarm import side_by_side

    text = side_by_side(3, [1650.0, 1500.0, 1700.0], [1000.0, 1200.0, 1100.0], 4)
    header, row = text.splitlines()
    assert header.split()[:4] == ["row", "unit", "3", "replicas"]
    assert "1,650 [1,500-1,700]" in row
    assert "1,100 [1,000-1,200]" in row
    assert row.split()[-2] == "1.55x"  # the per-pair ratios 1.65, 1.25 and 1.55: their median


# The course's MLflow Dockerfile (../shared/baseline/course/mlflow/Dockerfile), which a clone need not have beside it.
COURSE_DOCKERFILE = """FROM python:3.11-slim-bookworm
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt
EXPOSE 5000
WORKDIR /mlflow
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
"""


def test_the_baseline_image_is_the_courses_dockerfile_held_to_the_lock() -> None:
    text = COURSE_DOCKERFILE
    patched = baseline_dockerfile(text, "python:3.13-slim-trixie").splitlines()
    assert patched[0] == "FROM python:3.13-slim-trixie"
    assert "RUN pip install --no-cache-dir --constraint /tmp/constraints.txt -r /tmp/requirements.txt" in patched
    copies = [line for line in patched if line.startswith("COPY ")]
    assert copies == ["COPY requirements.txt /tmp/requirements.txt", "COPY constraints.txt /tmp/constraints.txt"]
    # Everything else is the course's, line for line.
    assert [line for line in patched if not line.startswith(("FROM ", "COPY ", "RUN "))] == [
        line for line in text.splitlines() if not line.startswith(("FROM ", "COPY ", "RUN "))
    ]
    with pytest.raises(BenchError, match=r"update bench/stacks\.py"):
        baseline_dockerfile(text.replace("-r /tmp/requirements.txt", "mlflow"), "python:3.13")


def test_the_courses_pins_must_be_the_locks() -> None:
    """The bench holds the course's install to trackstack's lock of its release: its own pins must agree."""
    lock = constraints_file("3.8.1").read_text(encoding="utf-8")
    check_pins_agree("psycopg2-binary==2.9.10\nmlflow==3.8.1\nboto3==1.38.23\n", lock)
    with pytest.raises(BenchError, match=r"boto3==1\.40\.0"):
        check_pins_agree("mlflow==3.8.1\nboto3==1.40.0\n", lock)
