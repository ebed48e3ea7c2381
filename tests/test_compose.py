"""docker-compose.yml cannot be run here (no Docker engine), so its content is checked: a
PostgreSQL service with a healthcheck and a named volume published on loopback only, no
password in the file, a migrate service that waits for it and creates the application's
role, and a README URL that connects as that role, not as the owner."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(TEXT)
README = (ROOT / "README.md").read_text()
ENV_REFERENCE = re.compile(r"^\$\{(\w+):\?.+\}$")  # ${NAME:?message}: required, from .env


def test_db_service_has_a_supported_postgres_a_healthcheck_and_a_named_volume() -> None:
    db = COMPOSE["services"]["db"]
    image, _, tag = db["image"].partition(":")
    assert image == "postgres" and int(tag.split(".")[0]) >= 14
    env = db["environment"]
    check = " ".join(db["healthcheck"]["test"])
    assert "pg_isready" in check
    assert f"-U {env['POSTGRES_USER']}" in check and f"-d {env['POSTGRES_DB']}" in check
    volume, _, target = db["volumes"][0].partition(":")
    assert volume in COMPOSE["volumes"]  # named, so data outlives the container
    # postgres:18 keeps its data under /var/lib/postgresql/18/...; older images use .../data.
    expected = "/var/lib/postgresql" if int(tag.split(".")[0]) >= 18 else "/var/lib/postgresql/data"
    assert target == expected


def test_the_port_binds_loopback_and_no_password_is_in_the_file() -> None:
    db = COMPOSE["services"]["db"]
    for port in db["ports"]:
        assert port.split(":")[0] == "127.0.0.1", f"{port} publishes beyond this machine"
    assert ENV_REFERENCE.match(db["environment"]["POSTGRES_PASSWORD"])
    migrate_env = COMPOSE["services"]["migrate"]["environment"]
    assert make_url(migrate_env["AHASHDB_DATABASE_URL"]).password is None
    for name in ("PGPASSWORD", "AHASHDB_APP_PASSWORD"):
        assert ENV_REFERENCE.match(migrate_env[name]), name
    example = (ROOT / ".env.example").read_text()
    for line in example.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert value == "", f".env.example ships a value for {name}"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_migrate_waits_for_health_and_creates_the_application_role() -> None:
    db, migrate = COMPOSE["services"]["db"], COMPOSE["services"]["migrate"]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    command = " ".join(migrate["command"].split())
    assert re.search(r"\bahashdb migrate\b", command)
    assert re.search(r"\bahashdb roles create ahashdb_app --password-file -", command)
    url = make_url(migrate["environment"]["AHASHDB_DATABASE_URL"])
    env = db["environment"]
    assert (url.username, url.database) == (env["POSTGRES_USER"], env["POSTGRES_DB"])
    assert url.host == "db" and url.port == 5432
    assert migrate["restart"] == "no"


def test_readme_connects_as_the_application_role_on_loopback() -> None:
    assert "docker compose up -d" in README
    urls = re.findall(r'AHASHDB_DATABASE_URL="(postgresql://[^"\s]+)"', README)
    assert urls, "README shows no AHASHDB_DATABASE_URL for docker compose"
    db = COMPOSE["services"]["db"]
    published = {int(p.split(":")[1]): int(p.split(":")[2]) for p in db["ports"]}
    for raw in urls:
        url = make_url(raw)
        assert url.host == "127.0.0.1" and published.get(url.port) == 5432
        assert url.username == "ahashdb_app" != db["environment"]["POSTGRES_USER"]
        assert url.password == "$AHASHDB_APP_PASSWORD" and url.database == "ahashdb"


def test_the_service_runs_as_the_application_role_after_migration_on_loopback() -> None:
    service = COMPOSE["services"]["service"]
    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert re.search(r"\bahashdb serve --host 0\.0\.0\.0 --port 8080\b", service["command"])
    url = make_url(service["environment"]["AHASHDB_DATABASE_URL"])
    assert url.username == "ahashdb_app" and url.password is None and url.host == "db"
    assert ENV_REFERENCE.match(service["environment"]["PGPASSWORD"])
    assert all(p.startswith("127.0.0.1:") for p in service["ports"])
    migrate = " ".join(COMPOSE["services"]["migrate"]["command"].split())
    assert "ahashdb rls enable --strict" in migrate


def test_citus_profile_is_a_coordinator_two_workers_and_a_one_shot_enable() -> None:
    services = COMPOSE["services"]
    citus = {name: s for name, s in services.items() if "citus" in s.get("profiles", [])}
    nodes = {n: s for n, s in citus.items() if s["image"].startswith("citusdata/citus:")
             and "healthcheck" in s}
    assert set(nodes) == {"citus-coordinator", "citus-worker1", "citus-worker2"}
    for name, node in nodes.items():
        assert ENV_REFERENCE.match(node["environment"]["POSTGRES_PASSWORD"]), name
        assert node["volumes"][0].partition(":")[0] in COMPOSE["volumes"]
        published = node.get("ports", [])
        assert all(p.split(":")[0] == "127.0.0.1" for p in published), published
        assert (name == "citus-coordinator") == bool(published)  # workers stay private
    # The workers join with the owner's password in pg_dist_authinfo, and nothing trusts.
    setup = citus["citus-setup"]
    script = setup["command"][-1]
    assert "pg_dist_authinfo" in script and "citus_set_coordinator_host" in script
    assert script.count("citus_add_node") == 2
    assert "trust" not in TEXT.lower().replace("never trust", "")
    assert all(c["condition"] == "service_healthy" for c in setup["depends_on"].values())
    one_shot = citus["citus-migrate"]
    assert one_shot["depends_on"]["citus-setup"]["condition"] == \
        "service_completed_successfully"
    command = " ".join(one_shot["command"].split())
    assert re.search(r"\bahashdb migrate && ahashdb citus enable\b", command)
    url = make_url(one_shot["environment"]["AHASHDB_DATABASE_URL"])
    assert url.host == "citus-coordinator" and url.password is None
    assert "--profile citus" in README
