"""The three targets a project's stack runs on, and the one place that chooses among them.

Each target is a package with the same module names where they apply: `render.py` (pure: settings
in, files out), `apply.py` (bring up, remove, run its tool: docker compose, docker stack, kubectl),
`state.py` (read and wait), `views.py` (what `urls`, `open`, `logs` show, pure) and `target.py`
(the `Target` the tasks call). `base.py` holds the interface and the shapes they share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, overload

from trackstack.problems import Problem
from trackstack.project import Project
from trackstack.targets.base import Target
from trackstack.targets.compose.target import ComposeTarget
from trackstack.targets.kubernetes import render as kubernetes_render
from trackstack.targets.kubernetes.target import KubernetesTarget
from trackstack.targets.swarm import render as swarm_render
from trackstack.targets.swarm.apply import deployed
from trackstack.targets.swarm.target import SwarmTarget

__all__ = ["ComposeTarget", "KubernetesTarget", "SwarmTarget", "Target", "deploy_problems", "for_project"]

# Which stack a task means: "local" the Compose stack on this machine, "shared" the server that
# `invoke deploy` deploys, "in use" whichever of them the project runs on now.
Scope = Literal["local", "shared", "in use"]


def _shared_is_kubernetes(deploy_target: str) -> bool:
    """DEPLOY_TARGET: kubernetes, or swarm (the default)."""
    return deploy_target == "kubernetes"


@overload
def for_project(project: Project, scope: Literal["local"]) -> ComposeTarget: ...
@overload
def for_project(project: Project, scope: Literal["shared", "in use"] = "in use") -> Target: ...
def for_project(project: Project, scope: Scope = "in use") -> Target:
    """The target a task works on; the only place that chooses one.

    - "local" (`invoke up`, `down`, `stop`, `render`, `build`, `seed`, `reset`): Docker Compose on
      this machine, always.
    - "shared" (`invoke deploy`, `undeploy`): Kubernetes when `.env` says DEPLOY_TARGET=kubernetes,
      else Docker Swarm (DEPLOY_TARGET unset or swarm).
    - "in use" (`status`, `logs`, `urls`, `open`, `user.*`, `doctor`, `backup`, `restore`):
      Kubernetes when DEPLOY_TARGET=kubernetes; else Swarm when this project is deployed to the
      swarm of the Docker engine in use (a `docker service ls` of its stack finds services); else
      Compose.
    """
    if scope == "local":
        return ComposeTarget(project)
    if _shared_is_kubernetes(project.settings.deploy_target):
        return KubernetesTarget(project)
    if scope == "shared" or deployed(project):
        return SwarmTarget(project)
    return ComposeTarget(project)


def deploy_problems(values: Mapping[str, str]) -> list[Problem]:
    """`invoke deploy`'s own checks of raw `.env` values, for the target DEPLOY_TARGET names (default swarm)."""
    if _shared_is_kubernetes(values.get("DEPLOY_TARGET", "swarm")):
        return kubernetes_render.deploy_problems(values)
    return swarm_render.deploy_problems(values)
