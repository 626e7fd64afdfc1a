"""A shared server on Kubernetes: `invoke deploy` with DEPLOY_TARGET=kubernetes."""
