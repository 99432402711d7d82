"""`coherency api` (the platform API under uvicorn) and `coherency users create` (bootstrap accounts).

Both read the API's settings from the environment (DATABASE_URL, COHERENCY_API_*) and bring the database to the
newest migration first, so a fresh SQLite file or PostgreSQL database needs no other step.
"""

from __future__ import annotations

from typing import Annotated

import typer

from coherency.cli import fail

users_app = typer.Typer(help="Platform API accounts.", no_args_is_help=True)


def api_settings():
    """The API's settings from the environment; exit 2 with one line when they are wrong."""
    from pydantic import ValidationError

    from platform_api.settings import get_settings

    try:
        return get_settings()
    except ValidationError as e:
        fail(f"API settings: {e.errors()[0]['msg']}")


def api(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8090,
    workers: Annotated[int, typer.Option(min=1, max=64, help="uvicorn worker processes.")] = 1,
) -> None:
    """Start the platform API (OpenAPI schema at /openapi.json, docs at /docs)."""
    import uvicorn

    from platform_api.db import upgrade

    settings = api_settings()
    upgrade(settings.database_url)
    typer.echo(f"platform API on http://{host}:{port} (docs: /docs), database {_redacted(settings.database_url)}")
    uvicorn.run("platform_api.main:serve_app", factory=True, host=host, port=port, workers=workers,
                log_level="info", access_log=False)


@users_app.command("create")
def create_user(
    email: Annotated[str, typer.Option(help="Sign-in email.")],
    password: Annotated[str, typer.Option(help="At least 8 characters.")],
    role: Annotated[str, typer.Option(help="admin, clinician, caregiver or patient.")],
    patient_id: Annotated[str | None, typer.Option(help="The patient record a patient login belongs to.")] = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Create a user in the API's database (the first admin, demo accounts)."""
    from pydantic import ValidationError

    from platform_api.auth import service
    from platform_api.auth.models import Role
    from platform_api.auth.schemas import UserCreate
    from platform_api.db import session_factory, upgrade
    from platform_api.errors import DomainError

    settings = api_settings()
    try:
        data = UserCreate(email=email, password=password, role=role, patient_id=patient_id, display_name=name)
    except ValidationError as e:
        error = e.errors()[0]
        fail(f"{'.'.join(map(str, error['loc']))}: {error['msg']}")
    upgrade(settings.database_url)
    with session_factory(settings.database_url)() as session:
        try:
            user = service.create(session, **data.model_dump())
        except DomainError as e:
            fail(e.message)
    typer.echo(f"created {Role(user.role).value} {user.email} (id {user.id})")


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
