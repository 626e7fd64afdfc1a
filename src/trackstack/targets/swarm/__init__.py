"""A shared server on Docker Swarm: `invoke deploy` with DEPLOY_TARGET unset or swarm."""
