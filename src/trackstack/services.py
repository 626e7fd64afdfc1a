"""The one table of services: what every other module knows about the four containers.

Settings take their port keys from it, the compose template its ports, volumes and
healthchecks, the port check, `status`, `urls`, `open` and the tests their names, URLs and
login hints. Adding a service is one entry here plus its block in `templates/compose.yaml.j2`
(a unit test fails when the two disagree). On Docker Swarm (`invoke deploy`) a fifth service,
the TLS proxy in front of MLflow's replicas, joins them (`SWARM_SERVICES`), and the table
also says which secrets each service reads and which run on the node labelled for data.

The artifact store is one of two entries, chosen by ARTIFACT_STORE (`STORES`, `stack`): MinIO
(the course's) or SeaweedFS. Both are the service `minio`, the stack's S3 host name, on the same
`.env` ports and keys, so MLflow, seeding, backups and the port check need not know which runs;
what differs (image, command, container ports, volume, probe, variables) is in its entry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    """One published port of a service, as users meet it."""

    title: str  # what `invoke urls` calls it
    port_key: str  # the `.env` key of the host port
    container_port: int
    course_port: int  # the course's default, written in .env.example
    login: str  # where the login comes from: names of `.env` keys, never their values
    scheme: str = "http"
    browser: bool = False  # opened by `invoke open`
    health_path: str = ""  # unauthenticated HTTP path that answers when the service is up
    login_with_auth: str = ""  # the login hint instead of `login` when MLFLOW_AUTH=true


@dataclass(frozen=True)
class Volume:
    name: str
    mount: str


@dataclass(frozen=True)
class Probe:
    """A healthcheck run inside the container: `tool` must exist in the service's image."""

    tool: str  # "pg_isready", or an HTTP client the image ships: curl, wget, python
    port: int
    path: str = ""

    def command(self, user: str = "${POSTGRES_USER}", database: str = "${POSTGRES_DB}") -> list[str]:
        """The healthcheck's test; Postgres's names default to Compose's references to `.env`."""
        url = f"http://127.0.0.1:{self.port}{self.path}"
        if self.tool == "pg_isready":
            # Over TCP: during first-run init the server listens on its socket only.
            return ["CMD", "pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", database]
        if self.tool == "curl":
            return ["CMD", "curl", "-fsS", "-o", "/dev/null", url]
        if self.tool == "wget":
            return ["CMD", "wget", "-q", "-O", "/dev/null", url]
        if self.tool == "python":
            # Sockets only: urllib would import half the standard library every probe.
            request = f"GET {self.path} HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n"
            script = (
                "import socket,sys;"
                f"s=socket.create_connection(('127.0.0.1',{self.port}),4);"
                f"s.sendall(b'{request}');"
                "sys.exit(b' 200 ' not in s.recv(64))"
            )
            return ["CMD", "python", "-I", "-S", "-c", script]
        raise ValueError(f"unknown probe tool {self.tool!r}")


@dataclass(frozen=True)
class SecretUse:
    """A `.env` secret a service reads from a file on Swarm: /run/secrets/<key in lower case>."""

    key: str  # the `.env` key, e.g. POSTGRES_PASSWORD
    variable: str = ""  # the image's variable that names the file: `<variable>_FILE`; "" for the file alone

    @property
    def target(self) -> str:
        return self.key.lower()


@dataclass(frozen=True)
class Credential:
    """A container variable that Compose fills from a `.env` key (`${KEY}`): no secret in a template."""

    variable: str  # what the image reads, e.g. AWS_SECRET_ACCESS_KEY
    key: str  # the `.env` key, e.g. MINIO_ROOT_PASSWORD


@dataclass(frozen=True)
class Service:
    name: str
    image_key: str | None  # `.env` key of its pinned image; None for the image trackstack builds
    endpoints: tuple[Endpoint, ...]  # the first is the one `status` shows
    probe: Probe
    start_period: int  # seconds a starting service may fail its probe without counting
    volume: Volume | None = None
    # On Swarm: the secrets it reads, whether it runs on the data node (beside its volume), and
    # whether its ports are published: always, never (MLflow: only through the proxy), or, as in
    # compose, when its *_BIND_ADDRESS shares it (host-mode ports cannot bind one address).
    secrets: tuple[SecretUse, ...] = ()
    data_node: bool = False
    swarm_published: str = "when_shared"
    # What every target's template writes the same: the arguments the container runs with where
    # the image's default is not it, the seconds a stop may take (else the target's default), the
    # group its volume must be writable for (the image's user), and whether it reads pgAdmin's
    # server list (mounted at containers.PGADMIN_SERVERS_PATH).
    command: tuple[str, ...] = ()
    stop_grace_period: int | None = None
    fs_group: int | None = None
    reads_servers_list: bool = False
    # What users call the software (messages such as "MinIO: created bucket mlflow"), its
    # credentials from `.env`, its variables that are no secret, and the variable that tells it
    # the URL its web UI is published at (containers.store_environment fills it in).
    product: str = ""
    credentials: tuple[Credential, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    public_url_variable: str = ""
    # On Swarm and Kubernetes, whether the image reads its `secrets` from files through `*_FILE`
    # variables itself; if not, the variables are set from the files (Swarm: a shell before
    # `entrypoint`, the image's own; Kubernetes: the Secret's keys).
    reads_secret_files: bool = True
    entrypoint: tuple[str, ...] = ()
    # The S3 client its image ships, which a backup on Swarm runs inside its task (MinIO's `mc`).
    s3_client: str = ""

    @property
    def port(self) -> int:
        """The port the other services reach it on: the one its healthcheck asks."""
        return self.probe.port

    @property
    def address(self) -> str:
        """host:port inside the stack (the service's name is its host on every target)."""
        return f"{self.name}:{self.port}"


POSTGRES = Service(
    name="postgres",
    image_key="POSTGRES_IMAGE",
    endpoints=(
        Endpoint(
            "PostgreSQL", "POSTGRES_PORT", 5432, 5432, "password POSTGRES_PASSWORD from .env", scheme="postgresql"
        ),
    ),
    probe=Probe("pg_isready", 5432),
    start_period=60,
    volume=Volume("postgres-data", "/var/lib/postgresql/data"),
    secrets=(SecretUse("POSTGRES_PASSWORD", "POSTGRES_PASSWORD"),),
    data_node=True,
    # Long enough for a clean shutdown after a checkpoint.
    stop_grace_period=60,
)
MINIO = Service(
    name="minio",
    image_key="MINIO_IMAGE",
    endpoints=(
        Endpoint(
            "MinIO console",
            "MINIO_CONSOLE_PORT",
            9001,
            9001,
            "log in with MINIO_ROOT_USER / MINIO_ROOT_PASSWORD from .env",
            browser=True,
        ),
        Endpoint(
            "MinIO S3 API",
            "MINIO_API_PORT",
            9000,
            9000,
            "keys MINIO_ROOT_USER / MINIO_ROOT_PASSWORD (MLflow clients need none)",
            health_path="/minio/health/live",
        ),
    ),
    probe=Probe("curl", 9000, "/minio/health/live"),
    start_period=30,
    volume=Volume("minio-data", "/data"),
    secrets=(SecretUse("MINIO_ROOT_PASSWORD", "MINIO_ROOT_PASSWORD"),),
    data_node=True,
    command=("server", "/data", "--address", ":9000", "--console-address", ":9001"),
    product="MinIO",
    credentials=(
        Credential("MINIO_ROOT_USER", "MINIO_ROOT_USER"),
        Credential("MINIO_ROOT_PASSWORD", "MINIO_ROOT_PASSWORD"),
    ),
    public_url_variable="MINIO_BROWSER_REDIRECT_URL",
    s3_client="mc",
)
# SeaweedFS's all-in-one server (`weed mini`: master, volume server, filer, S3 gateway and admin UI
# in one process), the image's default command, on the ports and keys MinIO has: MINIO_ROOT_USER /
# MINIO_ROOT_PASSWORD are its S3 keys (an admin identity made from AWS_* at every start, never
# stored, so a new .env password applies on `invoke up`) and the admin UI's login. Its own volume:
# MinIO's data is no SeaweedFS data (and the image would chown it), so switching keeps both.
SEAWEEDFS_S3_PORT = 8333
SEAWEEDFS_ADMIN_PORT = 12535
SEAWEEDFS = Service(
    name="minio",
    image_key="SEAWEEDFS_IMAGE",
    endpoints=(
        Endpoint(
            "SeaweedFS admin UI",
            "MINIO_CONSOLE_PORT",
            SEAWEEDFS_ADMIN_PORT,
            9001,
            "log in with MINIO_ROOT_USER / MINIO_ROOT_PASSWORD from .env",
            browser=True,
        ),
        Endpoint(
            "SeaweedFS S3 API",
            "MINIO_API_PORT",
            SEAWEEDFS_S3_PORT,
            9000,
            "keys MINIO_ROOT_USER / MINIO_ROOT_PASSWORD (MLflow clients need none)",
            health_path="/healthz",
        ),
    ),
    probe=Probe("curl", SEAWEEDFS_S3_PORT, "/healthz"),
    start_period=30,
    volume=Volume("seaweedfs-data", "/data"),
    # On Swarm and Kubernetes: weed reads no `*_FILE` variable, so these variables are set from the
    # secret's file (its admin S3 identity from AWS_*, its admin UI's login from WEED_ADMIN_*).
    secrets=(
        SecretUse("MINIO_ROOT_PASSWORD", "AWS_SECRET_ACCESS_KEY"),
        SecretUse("MINIO_ROOT_PASSWORD", "WEED_ADMIN_PASSWORD"),
    ),
    reads_secret_files=False,
    entrypoint=("/entrypoint.sh",),
    data_node=True,
    # -ip: its parts find each other on loopback, not at the container's address of the day.
    # Off what the stack does not use: WebDAV, the Iceberg and Lance catalogs, the admin UI's
    # second (pre-4.x) port.
    command=(
        "mini",
        "-dir=/data",
        "-ip=127.0.0.1",
        "-ip.bind=0.0.0.0",
        f"-s3.port={SEAWEEDFS_S3_PORT}",
        f"-admin.port={SEAWEEDFS_ADMIN_PORT}",
        "-admin.port.legacy=0",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ),
    product="SeaweedFS",
    credentials=(
        Credential("AWS_ACCESS_KEY_ID", "MINIO_ROOT_USER"),
        Credential("AWS_SECRET_ACCESS_KEY", "MINIO_ROOT_PASSWORD"),
        Credential("WEED_ADMIN_USER", "MINIO_ROOT_USER"),
        Credential("WEED_ADMIN_PASSWORD", "MINIO_ROOT_PASSWORD"),
    ),
)
MLFLOW = Service(
    name="mlflow",
    image_key=None,
    endpoints=(
        Endpoint(
            "MLflow UI",
            "MLFLOW_PORT",
            5000,
            5001,
            "no login",
            browser=True,
            health_path="/health",
            login_with_auth="admin: MLFLOW_ADMIN_USER / MLFLOW_ADMIN_PASSWORD from .env; "
            "students: `invoke user.add NAME`",
        ),
    ),
    probe=Probe("python", 5000, "/health"),
    start_period=90,
    # The image's entrypoint reads every `*_FILE` variable (docker/mlflow-entrypoint.py).
    secrets=(
        # MLflow's own Postgres role and S3 user (privileges.py), never the superuser's or the root keys.
        SecretUse("MLFLOW_DB_PASSWORD", "PGPASSWORD"),
        SecretUse("MLFLOW_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
        SecretUse("MLFLOW_ADMIN_PASSWORD", "MLFLOW_ADMIN_PASSWORD"),
        SecretUse("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_FLASK_SERVER_SECRET_KEY"),
    ),
    swarm_published="never",
)
# The prepare job (Swarm, Kubernetes) runs in MLflow's image with MLflow's secrets, the superuser's, which
# it needs to make MLflow's role and give it MLflow's databases, and the store's root key, which it needs
# to create the bucket (templates/mlflow/prepare.py); it checks that MLflow's own keys then reach it.
PREPARE_SECRETS: tuple[SecretUse, ...] = (
    *MLFLOW.secrets,
    SecretUse("POSTGRES_PASSWORD", "TRACKSTACK_SUPERUSER_PASSWORD"),
    SecretUse("MINIO_ROOT_PASSWORD", "TRACKSTACK_STORE_ROOT_PASSWORD"),
)
PGADMIN = Service(
    name="pgadmin",
    image_key="PGADMIN_IMAGE",
    endpoints=(
        Endpoint(
            "pgAdmin",
            "PGADMIN_PORT",
            80,
            5051,
            "log in with PGADMIN_DEFAULT_EMAIL / PGADMIN_DEFAULT_PASSWORD from .env",
            browser=True,
            health_path="/misc/ping",
        ),
    ),
    probe=Probe("wget", 80, "/misc/ping"),
    start_period=90,
    volume=Volume("pgadmin-data", "/var/lib/pgadmin"),
    # The Postgres password as a file only: the server entry's password command reads it.
    secrets=(SecretUse("PGADMIN_DEFAULT_PASSWORD", "PGADMIN_DEFAULT_PASSWORD"), SecretUse("POSTGRES_PASSWORD")),
    data_node=True,
    fs_group=5050,  # the image's USER
    reads_servers_list=True,
)
# Caddy terminates TLS on MLflow's port (templates/Caddyfile.j2): on Swarm it spreads requests over
# every MLflow task, which it finds in Swarm's DNS (no routing mesh), and runs on the data node, so
# that the address students use stays the same; Compose runs it in LAN mode (BIND_ADDRESS not
# loopback), where MLflow itself is then not published. Its volume keeps ACME certificates.
PROXY = Service(
    name="proxy",
    image_key="PROXY_IMAGE",
    endpoints=(
        Endpoint(
            "MLflow UI",
            "MLFLOW_PORT",
            443,
            5001,
            "admin: MLFLOW_ADMIN_USER / MLFLOW_ADMIN_PASSWORD from .env; students: `invoke user.add NAME`",
            scheme="https",
            browser=True,
            health_path="/health",
        ),
    ),
    probe=Probe("wget", 8080, "/health"),
    start_period=30,
    volume=Volume("proxy-data", "/data"),
    data_node=True,
    swarm_published="always",
)

# The artifact stores by their ARTIFACT_STORE value; the first is the default.
STORES: dict[str, Service] = {"minio": MINIO, "seaweedfs": SEAWEEDFS}


def stack(store: str, *, proxy: bool = False) -> tuple[Service, ...]:
    """The services of a stack whose artifact store is `store`, in the order users meet them; with `proxy`
    (Compose in LAN mode) the TLS proxy first, which then alone publishes MLflow's port."""
    return (*((PROXY,) if proxy else ()), MLFLOW, PGADMIN, STORES[store], POSTGRES)


# With MinIO, in the order users meet them (`urls`, `status`, `.env.example`). Every store has the
# same service names and port keys; what depends on the store asks `Settings.services`.
SERVICES: tuple[Service, ...] = stack("minio")
SERVICE_NAMES: tuple[str, ...] = tuple(service.name for service in SERVICES)
BY_NAME = {service.name: service for service in SERVICES}
ENDPOINTS: tuple[Endpoint, ...] = tuple(endpoint for service in SERVICES for endpoint in service.endpoints)
PORT_KEYS: tuple[str, ...] = tuple(endpoint.port_key for endpoint in ENDPOINTS)
# Which service publishes the port of each `.env` key.
SERVICE_OF_PORT = {endpoint.port_key: service.name for service in SERVICES for endpoint in service.endpoints}
ENDPOINT_OF_PORT = {endpoint.port_key: endpoint for endpoint in ENDPOINTS}
VOLUMES: tuple[Volume, ...] = tuple(service.volume for service in SERVICES if service.volume)


def swarm_stack(store: str) -> tuple[Service, ...]:
    """The services on Docker Swarm of a stack whose artifact store is `store`: the proxy first, as users meet it."""
    return (PROXY, *stack(store))


SWARM_SERVICES: tuple[Service, ...] = swarm_stack("minio")
# Every `.env` secret some service reads on Swarm or Kubernetes, whichever the store, in a stable order.
SWARM_SECRET_KEYS: tuple[str, ...] = tuple(
    sorted({use.key for store in STORES for service in swarm_stack(store) for use in service.secrets})
)
