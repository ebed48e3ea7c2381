"""docker-compose.yml cannot be run here (no Docker engine), so its content is checked: a
PostgreSQL service with a healthcheck and a named volume, a migrate service that waits for
it, and URLs that agree with the README."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
README = (ROOT / "README.md").read_text()


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


def test_migrate_service_waits_for_health_and_uses_the_db_credentials() -> None:
    db, migrate = COMPOSE["services"]["db"], COMPOSE["services"]["migrate"]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert re.search(r"\bahashdb migrate\b", migrate["command"])
    url = make_url(migrate["environment"]["AHASHDB_DATABASE_URL"])
    env = db["environment"]
    assert (url.username, url.password, url.database) == (
        env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"])
    assert url.host == "db" and url.port == 5432
    assert migrate["restart"] == "no"


def test_readme_url_reaches_the_published_port_with_the_same_credentials() -> None:
    assert "docker compose up -d" in README
    urls = re.findall(r"AHASHDB_DATABASE_URL=(postgresql://\S+)", README)
    assert urls, "README shows no AHASHDB_DATABASE_URL for docker compose"
    db = COMPOSE["services"]["db"]
    env = db["environment"]
    published = {int(p.split(":")[0]): int(p.split(":")[1]) for p in db["ports"]}
    for raw in urls:
        url = make_url(raw)
        assert url.host in ("localhost", "127.0.0.1")
        assert published.get(url.port) == 5432
        assert (url.username, url.password, url.database) == (
            env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"])
