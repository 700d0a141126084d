"""docker-compose.yaml's structure (no Docker engine runs here, so the file itself is checked).

Services, exact image tags, mounts, health checks, loopback-only ports, and secrets that
come only from the uncommitted env file which .env.example documents; LocalExecutor by
default, CeleryExecutor (Redis broker, PostgreSQL results, two workers) with the profile
``celery``, Flower with ``flower``.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.services import REPO

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)
CELERY_WORKERS = ("airflow-worker-1", "airflow-worker-2")
CELERY_SERVICES = ("redis", *CELERY_WORKERS)
LONG_RUNNING = (
    "postgres", "minio", "anvil", *AIRFLOW_SERVICES, *CELERY_SERVICES, "airflow-flower",
)  # fmt: skip
SERVICES = {
    "postgres", "minio", "minio-init", "anvil", "airflow-init", *AIRFLOW_SERVICES,
    *CELERY_SERVICES, "airflow-flower",
}  # fmt: skip
# the services that run tasks: the scheduler (LocalExecutor) or the Celery workers
TASK_RUNNERS = ("airflow-scheduler", *CELERY_WORKERS)
# ${VAR}, ${VAR:-default}, ${VAR?err}...; "$$" is compose's escape for a literal "$".
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?+-][^}]*)?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY($|_)|CONN")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_every_service_of_the_deployment_is_there(services: dict[str, Any]) -> None:
    assert set(services) == SERVICES


def test_images_are_pinned_to_exact_tags(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        if "build" in svc:  # built here from requirements.txt: its base image is pinned
            bases = re.findall(r"^FROM\s+(\S+)", svc["build"]["dockerfile_inline"], re.M)
            assert bases, name
            images = bases
        else:
            images = [svc["image"]]
        for image in images:
            repo, _, tag = image.rpartition(":")
            assert repo and tag and "/" not in tag, f"{name}: {image} has no tag"
            assert "@" not in repo, f"{name}: {image}"
            assert tag not in ("latest", "stable", "nightly", "main", "edge"), f"{name}: {image}"
            assert re.match(r"(RELEASE\.|v)?\d+[.\d-]", tag), f"{name}: {image} is not a version"


def test_airflow_runs_the_official_3_3_image_with_our_requirements(
    services: dict[str, Any],
) -> None:
    for name in ("airflow-init", *AIRFLOW_SERVICES, *CELERY_WORKERS, "airflow-flower"):
        svc = services[name]
        dockerfile = svc["build"]["dockerfile_inline"]
        assert re.search(r"^FROM apache/airflow:3\.3\.\d+", dockerfile, re.M), name
        assert "requirements.txt" in dockerfile and "constraints.txt" in dockerfile, name
        pinned = re.search(r"^apache-airflow==(\S+)", (REPO / "requirements.txt").read_text(), re.M)
        assert pinned and f"apache/airflow:{pinned.group(1)}" in dockerfile, name


def test_dags_and_plugins_are_mounted_into_every_airflow_service(
    services: dict[str, Any],
) -> None:
    for name in ("airflow-init", *AIRFLOW_SERVICES, *CELERY_WORKERS):
        mounts = {v.split(":")[0]: v.split(":")[1] for v in services[name]["volumes"]}
        assert mounts.get("./dags") == "/opt/airflow/dags", name
        assert mounts.get("./plugins") == "/opt/airflow/plugins", name
        assert (REPO / "dags").is_dir() and (REPO / "plugins").is_dir()


def test_long_running_services_have_health_checks_and_dependants_wait_for_them(
    services: dict[str, Any],
) -> None:
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and check["test"], f"{name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
    # MinIO's image has carried no curl since 2023-11: its check must not need curl.
    assert "curl" not in " ".join(services["minio"]["healthcheck"]["test"])
    # the scheduler's /health endpoint only exists when its health-check server is on
    env = _env(services["airflow-scheduler"])
    assert env.get("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "").lower() == "true"
    for name in (*AIRFLOW_SERVICES, *CELERY_WORKERS):
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["minio-init"]["condition"] == "service_completed_successfully", name
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_minio_init_creates_every_bucket_the_settings_name(services: dict[str, Any]) -> None:
    script = " ".join(services["minio-init"]["command"])
    example = (REPO / ".env.example").read_text()
    buckets = re.findall(r"^OPENPOOL_\w+_URI=s3://([a-z0-9.-]+)", example, re.M)
    assert len(buckets) == 4
    for bucket in buckets:
        assert bucket in script


def test_published_ports_are_bound_to_loopback(services: dict[str, Any]) -> None:
    published = 0
    for name, svc in services.items():
        for port in svc.get("ports", []):
            published += 1
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert published >= 3  # the Airflow UI, MinIO and anvil are reachable from the host


def test_secrets_come_only_from_the_uncommitted_env_file(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    text = (REPO / "docker-compose.yaml").read_text()
    used = set(VAR.findall(text))
    documented = set(
        re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=", (REPO / ".env.example").read_text(), re.M)
    )
    assert used, "the compose file takes nothing from the env file"
    assert used <= documented, f"not documented in .env.example: {sorted(used - documented)}"
    for name, svc in services.items():
        for key, value in _env(svc).items():
            if key.endswith("_FILE"):  # names a file, which holds the secret
                continue
            if SECRET_NAME.search(key):
                assert VAR.search(value), f"{name}: {key} is not taken from the env file"
        for secret in svc.get("secrets", []):
            assert secret in (compose.get("secrets") or {}), f"{name}: {secret} undeclared"
        for env_file in svc.get("env_file", []):
            assert env_file == ".env", name
    for secret in (compose.get("secrets") or {}).values():
        assert VAR.fullmatch(secret["file"]), secret  # a path from the env file, not a literal
    # the hot wallet's files reach the containers only as compose secrets, and only those
    # that run tasks (only `execute` decrypts the keystore)
    for name in TASK_RUNNERS:
        env = _env(services[name])
        for key in ("HOT_WALLET_KEYSTORE", "HOT_WALLET_PASSWORD_FILE"):
            assert env[key].startswith("/run/secrets/"), (name, key)
            assert env[key].removeprefix("/run/secrets/") in services[name]["secrets"], name
    holders = {name for name, svc in services.items() if svc.get("secrets")}
    assert holders == set(TASK_RUNNERS)
    # .env is excluded from git; .env.example is committed and holds only placeholders
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False)
    assert ignored.returncode == 0, ".env is not gitignored"
    kept = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=REPO, check=False)
    assert kept.returncode == 1, ".env.example must not be gitignored"


def test_local_executor_by_default_celery_only_with_its_profile(
    services: dict[str, Any],
) -> None:
    """Without a profile, the deployment is today's: LocalExecutor, no Redis, no workers."""
    example = (REPO / ".env.example").read_text()
    assert re.search(r"^AIRFLOW_EXECUTOR=LocalExecutor$", example, re.M)
    assert re.search(r"^COMPOSE_PROFILES=$", example, re.M)  # no profile: LocalExecutor
    for name in ("airflow-init", *AIRFLOW_SERVICES, *CELERY_WORKERS, "airflow-flower"):
        executor = _env(services[name])["AIRFLOW__CORE__EXECUTOR"]
        assert executor == "${AIRFLOW_EXECUTOR:-LocalExecutor}", name
    for name, svc in services.items():
        if name in CELERY_SERVICES:
            assert svc.get("profiles") == ["celery"], name
        elif name == "airflow-flower":
            assert svc.get("profiles") == ["flower"], name
        else:
            assert "profiles" not in svc, f"{name} must run under both executors"
        # a service that always runs may wait for Redis only where Redis may be absent
        for dep, cond in (svc.get("depends_on") or {}).items():
            if dep in CELERY_SERVICES and "profiles" not in svc:
                assert cond.get("required") is False, f"{name} needs {dep} without the profile"


def test_the_celery_profile_has_a_redis_broker_postgres_results_and_two_workers(
    services: dict[str, Any],
) -> None:
    env = _env(services["airflow-scheduler"])
    broker = env["AIRFLOW__CELERY__BROKER_URL"]
    assert broker == "redis://:${REDIS_PASSWORD}@redis:6379/0"
    results = env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert results == "db+postgresql+psycopg2://airflow:${POSTGRES_PASSWORD}@postgres/airflow"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
    # Redis asks for the password, read from the environment, not from its command line
    redis = services["redis"]
    assert _env(redis) == {"REDIS_PASSWORD": "${REDIS_PASSWORD}"}
    assert "requirepass" in " ".join(redis["command"])
    assert "${REDIS_PASSWORD}" not in " ".join(redis["command"])
    assert "ports" not in redis  # reached by the containers only
    assert "PONG" in " ".join(redis["healthcheck"]["test"])
    for name in CELERY_WORKERS:
        worker = services[name]
        assert worker["command"][:2] == ["celery", "worker"], name
        assert _env(worker)["AIRFLOW__CELERY__BROKER_URL"] == broker, name
        assert worker["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert "inspect ping" in " ".join(worker["healthcheck"]["test"]), name
        assert "ports" not in worker, name  # nothing published; own filesystem each
    flower = services["airflow-flower"]
    assert flower["command"] == ["celery", "flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    assert _env(flower)["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"] == "admin:${FLOWER_PASSWORD}"
    pinned = (REPO / "requirements.txt").read_text()
    for package in ("apache-airflow-providers-celery", "celery", "redis", "flower"):
        assert re.search(rf"^{package}==\S+$", pinned, re.M), package
