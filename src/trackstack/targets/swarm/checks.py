"""`invoke doctor` on a stack deployed to Docker Swarm: nodes up, the data node, each service's replicas,
`.env` for `invoke deploy`."""

from __future__ import annotations

from collections.abc import Mapping

from trackstack.doctor import SWARM_NODES, Check
from trackstack.envfile import read_env_file
from trackstack.problems import Problem
from trackstack.project import Project
from trackstack.services import SWARM_SERVICES
from trackstack.settings import Settings
from trackstack.shared_server import deploy_problems
from trackstack.targets import base
from trackstack.targets.swarm import render as swarm
from trackstack.targets.swarm import state as swarmstate
from trackstack.targets.swarm import views


def check_swarm(
    nodes: list[swarmstate.Node],
    services: Mapping[str, swarmstate.ServiceState],
    project: Project,
    deploy_problems: list[Problem],
) -> list[Check]:
    """The deployed stack's swarm: nodes up, the data node, each service's replicas, `.env` for `invoke deploy`."""
    down = [node.hostname for node in nodes if not node.ready]
    checks = [Check(SWARM_NODES, "ok", f"{len(nodes)} ready")]
    if down:
        detail = f"{len(nodes) - len(down)} of {len(nodes)} ready; down: {', '.join(down)}"
        fix = "start Docker on those nodes (Swarm runs their MLflow tasks elsewhere meanwhile); `docker node ls`"
        checks = [Check(SWARM_NODES, "warn", detail, fix)]
    try:
        data = swarmstate.choose_data_node(nodes)
    except swarmstate.DeployError as error:
        reason, _, fix = str(error).partition(". Fix: ")
        checks.append(Check("data node", "fail", reason, fix))
    else:
        if data.ready:
            checks.append(Check("data node", "ok", f"{data.hostname} ({data.address})"))
        else:
            detail = f"{data.hostname} is down: Postgres, MinIO, pgAdmin and the proxy run only there"
            checks.append(Check("data node", "fail", detail, f"start Docker on {data.hostname}"))
    states = {s.name: services.get(swarm.service_name(project.settings, s.name)) for s in SWARM_SERVICES}
    replicas = {name: f"{s.running}/{s.desired}" if s else "absent" for name, s in states.items()}
    short = [f"{name} {replicas[name]}" for name, s in states.items() if s is None or s.running < s.desired]
    if short:
        fix = "`invoke status` and `docker service ps --no-trunc NAME` say why; `invoke deploy` again"
        checks.append(Check("replicas", "warn", ", ".join(short), fix))
    else:
        checks.append(Check("replicas", "ok", ", ".join(f"{name} {text}" for name, text in replicas.items())))
    if deploy_problems:
        detail = "; ".join(str(problem) for problem in deploy_problems)
        checks.append(Check(".env for Swarm", "fail", detail, "edit .env as each line says, then `invoke deploy`"))
    return checks


def swarm_checks(project: Project) -> list[Check]:

    values, _ = read_env_file(project.env_file)
    nodes = swarmstate.nodes()
    found = check_swarm(nodes, swarmstate.services(project.name), project, deploy_problems(values))
    return found + exposure(project.settings, nodes)


def exposure(settings: Settings, nodes: list[swarmstate.Node]) -> list[Check]:
    """doctor's "exposure": MLflow through the proxy, the others on the data node where published."""
    try:
        data = swarmstate.choose_data_node(nodes)
    except swarmstate.DeployError:
        return []  # the "data node" check says why
    return base.exposure_checks(views.links(settings, data.address))
