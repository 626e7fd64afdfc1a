"""Nothing in `.env` changes the structure of a generated file (issue 27).

Every key gets every break-out payload: either validation refuses the key by name, or every file of
every target still parses, has exactly the keys it has with a plain value, and holds the value
whole. Secrets never reach a file at all; the Secret's document (kubectl's stdin) holds them exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from trackstack.engine import EngineFeatures
from trackstack.problems import SettingsError
from trackstack.services import PORT_KEYS
from trackstack.settings import KEYS, SECRET_KEYS, Settings
from trackstack.targets.compose.render import render_all
from trackstack.targets.kubernetes import render as kube
from trackstack.targets.swarm import render as swarm
from trackstack.templating import UnsafeValueError, caddy_token, dockerfile_word, yaml_scalar
from trackstack.validation import load_settings, validate

IMAGE = "registry.school.example/trackstack-mlflow:3.17.2-0123456789ab"
# Every optional value that reaches a file is set, so that every template writes it.
EVERYWHERE = {
    "MLFLOW_AUTH": "true",
    "MLFLOW_PUBLIC_HOSTS": "mlflow.school.example",
    "MLFLOW_IMAGE_REPOSITORY": "registry.school.example/trackstack-mlflow",
    "KUBE_CONTEXT": "school-cluster",
    "KUBE_NAMESPACE": "course",
    "KUBE_STORAGE_CLASS": "fast",
    "KUBE_INGRESS_HOST": "ingress.school.example",
    "KUBE_INGRESS_CLASS": "nginx",
    "BACKUP_SCHEDULE": "0 3 * * *",
    "BACKUP_DEST": "s3://class-backups/trackstack",
    "BACKUP_S3_ENDPOINT": "https://s3.school.example",
    "BACKUP_S3_ACCESS_KEY": "class-backup",
    "BACKUP_S3_SECRET_KEY": "Zq7-backup-secret-Xk2pLm9",
}
MARKER = "INJECTED"
PAYLOADS = [
    f'"\n      {MARKER}: "yes',  # the issue's example: out of a double-quoted YAML scalar
    f"'\n{MARKER}: yes",
    f"\n{MARKER}: yes",
    f"\r\n{MARKER}: yes",
    f"\t{MARKER}",
    f" {MARKER}",
    f"\u2028{MARKER}: yes",  # a YAML line break in YAML 1.1 readers
    f"\u0085{MARKER}: yes",
    f"${{{MARKER}}}",  # Compose interpolation
    f"{{{{ {MARKER} }}}}",  # Jinja, Go templates (Swarm), Caddy placeholders
    f"{{${MARKER}}}",
    f" #{MARKER}",
    f"#{MARKER}",
    f"}}{MARKER}",
    f": {MARKER}",
    f",{MARKER}",
    f"&{MARKER}",
    f"*{MARKER}",
    f"!{MARKER}",
    f"|{MARKER}",
    f"[{MARKER}]",
    f'"{MARKER}',
    f"\\{MARKER}",
    f"@{MARKER}",
]
# Every key whose value is no secret and is free text in `.env` (ports are numbers).
PLAIN_KEYS = [key for key in KEYS if key not in SECRET_KEYS and key not in PORT_KEYS]
LISTS = ("MLFLOW_PUBLIC_HOSTS",)


@pytest.fixture
def everywhere(values: dict[str, str]) -> dict[str, str]:
    return values | EVERYWHERE


def rendered(settings: Settings) -> dict[str, str]:
    """Every file each target writes (the Secret's document apart)."""
    files = {f"compose/{name}": text for name, text in render_all(settings, EngineFeatures()).items()}
    files |= {
        f"swarm/{name}": text for name, text in swarm.render_swarm(settings, image=IMAGE, mlflow_replicas=2).items()
    }
    files |= {f"kubernetes/{name}.yaml": text for name, text in kube.render_kube(settings, IMAGE).items()}
    return files


def parsed(name: str, text: str) -> list[Any]:
    if name.endswith(".json"):
        return [json.loads(text)]
    return list(yaml.safe_load_all(text))


def key_paths(node: Any, path: str = "") -> Iterator[str]:
    """Every mapping key's path: an extra key anywhere shows as a path the plain render lacks."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}/{key}"
            yield from key_paths(value, f"{path}/{key}")
    elif isinstance(node, list):
        for item in node:
            yield from key_paths(item, f"{path}[]")


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def outcome(values: dict[str, str], key: str, value: str) -> Settings | SettingsError:
    try:
        return validate(values | {key: value})
    except SettingsError as error:
        return error


def assert_refused_by_name(error: SettingsError, key: str, value: str) -> None:
    assert {problem.key for problem in error.problems} == {key}, error
    assert all(problem.fix for problem in error.problems)
    if key in SECRET_KEYS:
        assert value not in str(error)


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_a_plain_value_is_refused_by_name_or_lands_whole_in_its_field(
    everywhere: dict[str, str], key: str, payload: str
) -> None:
    value = (everywhere.get(key) or "x") + payload
    result = outcome(everywhere, key, value)
    if isinstance(result, SettingsError):
        assert_refused_by_name(result, key, value)
        return
    plain = rendered(validate(everywhere))
    # A list's items are the values (MLFLOW_PUBLIC_HOSTS is comma-separated).
    wholes = [item.strip() for item in value.split(",") if MARKER in item] if key in LISTS else [value]
    for name, text in rendered(result).items():
        documents = parsed(name, text) if name.endswith((".yaml", ".json")) else None
        if documents is None:  # the Dockerfiles and the Caddyfile: no line more, none begins anew
            assert len(text.splitlines()) == len(plain[name].splitlines()), name
            assert not any(line.lstrip().startswith(MARKER) for line in text.splitlines()), name
            continue
        assert [set(key_paths(doc)) for doc in documents] == [set(key_paths(doc)) for doc in parsed(name, plain[name])]
        for found in strings(documents):
            assert MARKER not in found or any(whole in found for whole in wholes), (name, found)


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_the_issues_example_is_refused_for_every_plain_key(everywhere: dict[str, str], key: str) -> None:
    """Every plain key refuses a quote with a line break, whatever else it would accept."""
    value = (everywhere.get(key) or "x") + PAYLOADS[0]
    result = outcome(everywhere, key, value)
    assert isinstance(result, SettingsError)
    assert_refused_by_name(result, key, value)


# A secret may hold any printable character, but no line break or other control character.
SECRET_PAYLOADS_REFUSED = [p for p in PAYLOADS if not p.isprintable() or "$" in p]
SECRET_PAYLOADS_KEPT = [p for p in PAYLOADS if p not in SECRET_PAYLOADS_REFUSED]


@pytest.mark.parametrize("payload", SECRET_PAYLOADS_REFUSED)
@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_a_secret_with_a_line_break_or_dollar_is_refused_by_name_unshown(
    everywhere: dict[str, str], key: str, payload: str
) -> None:
    value = everywhere[key] + payload
    result = outcome(everywhere, key, value)
    assert isinstance(result, SettingsError)
    assert_refused_by_name(result, key, value)
    assert everywhere[key] not in str(result)


@pytest.mark.parametrize("payload", SECRET_PAYLOADS_KEPT)
@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_a_secret_of_any_printable_characters_reaches_no_file_and_the_secret_exactly(
    everywhere: dict[str, str], key: str, payload: str
) -> None:
    value = everywhere[key] + payload
    settings = validate(everywhere | {key: value})
    plain = rendered(validate(everywhere))
    for name, text in rendered(settings).items():
        assert value not in text, name
        assert everywhere[key] not in text, name
        if name.endswith((".yaml", ".json")):
            assert [set(key_paths(doc)) for doc in parsed(name, text)] == [
                set(key_paths(doc)) for doc in parsed(name, plain[name])
            ]
    assert value not in json.dumps(swarm.prepare_job_args(settings, image=IMAGE))
    secret = json.loads(kube.render_secret(settings))
    if key.lower() in secret["stringData"]:
        assert secret["stringData"][key.lower()] == value


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_yaml_filter_round_trips_any_text(payload: str) -> None:
    text = f"key: {yaml_scalar('value' + payload)}\nother: 1\n"
    assert yaml.safe_load(text) == {"key": "value" + payload, "other": 1}


@pytest.mark.parametrize("payload", PAYLOADS)
def test_caddyfile_and_dockerfile_words_refuse_their_syntax(payload: str) -> None:
    if payload != f"*{MARKER}":  # a wildcard is a Caddyfile word
        with pytest.raises(UnsafeValueError):
            caddy_token("mlflow.school.example" + payload)
    if payload not in (f"@{MARKER}", f"[{MARKER}]"):  # `@` and `[]` are words in a Dockerfile
        with pytest.raises(UnsafeValueError):
            dockerfile_word("python:3.13-slim" + payload)
    assert caddy_token("*.school.example") == "*.school.example"
    assert dockerfile_word("python:3.13-slim@sha256:" + "0" * 64).startswith("python")


def test_the_issues_env_line_is_refused_as_read_from_the_file(tmp_path: Any, values: dict[str, str]) -> None:
    """python-dotenv decodes the escapes of a double-quoted value: the line break is real."""
    lines = [
        f"{key}={value}" for key, value in values.items() if key not in ("MINIO_ROOT_USER", "PGADMIN_DEFAULT_EMAIL")
    ]
    lines += ['MINIO_ROOT_USER="minio\\"\\n      INJECTED: \\"yes"', 'PGADMIN_DEFAULT_EMAIL="ad\\"min@example.com"']
    env = tmp_path / ".env"
    env.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert {problem.key for problem in caught.value.problems} == {"MINIO_ROOT_USER", "PGADMIN_DEFAULT_EMAIL"}
