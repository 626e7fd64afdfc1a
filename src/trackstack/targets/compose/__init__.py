"""Docker Compose on this machine: `invoke up` and the local stack (render, apply, state, views, target)."""
