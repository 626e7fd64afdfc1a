"""A small client for pgAdmin's web API, as its own UI uses it: log in, list, connect."""

from __future__ import annotations

import re
from typing import Any

import requests

_CSRF = re.compile(r"""["']?csrf(?:Token|_token)["']?\s*[:=]\s*["']([^"']+)["']""")


class PgAdmin:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.csrf = ""

    def _token(self, path: str) -> str:
        page = self.session.get(f"{self.base_url}{path}", timeout=15)
        page.raise_for_status()
        match = _CSRF.search(page.text)
        return match[1] if match else ""

    def login(self, email: str, password: str) -> bool:
        token = self._token("/login")
        response = self.session.post(
            f"{self.base_url}/authenticate/login",
            data={"email": email, "password": password, "csrf_token": token},
            timeout=15,
        )
        # A good login lands in the browser; a bad one goes back to the login page.
        if response.status_code != 200 or "/login" in response.url:
            return False
        self.csrf = self._token("/browser/") or token
        return True

    def get(self, path: str) -> Any:
        response = self.session.get(f"{self.base_url}{path}", headers={"X-pgA-CSRFToken": self.csrf}, timeout=15)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(
            f"{self.base_url}{path}", json=body, headers={"X-pgA-CSRFToken": self.csrf}, timeout=30
        )

    def servers(self) -> list[tuple[int, dict[str, Any]]]:
        """(group id, server node) for every server the logged-in user sees."""
        found = []
        for group in self.get("/browser/server_group/nodes/")["data"]:
            group_id = int(group["_id"])
            # pgAdmin answers a group's children in "result" (older releases used "data"), and
            # 410 Gone for a group without servers.
            response = self.session.get(
                f"{self.base_url}/browser/server/nodes/{group_id}", headers={"X-pgA-CSRFToken": self.csrf}, timeout=15
            )
            if response.status_code == 410:
                continue
            response.raise_for_status()
            answer = response.json()
            found += [(group_id, node) for node in answer.get("result") or answer.get("data") or []]
        return found

    def properties(self, group_id: int, server_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/browser/server/obj/{group_id}/{server_id}")
        return result

    def add_server(self, group_id: int, name: str) -> int:
        """Register a server as a user does in the "Register > Server" dialog; returns its id."""
        body = {"name": name, "host": "postgres", "port": 5432, "db": "postgres", "username": "someone",
                "connect_now": False, "sslmode": "prefer"}  # fmt: skip
        response = self.post(f"/browser/server/obj/{group_id}/", body)
        response.raise_for_status()
        return int(response.json()["node"]["_id"])

    def delete_server(self, group_id: int, server_id: int) -> None:
        response = self.session.delete(
            f"{self.base_url}/browser/server/obj/{group_id}/{server_id}",
            headers={"X-pgA-CSRFToken": self.csrf},
            timeout=15,
        )
        response.raise_for_status()
