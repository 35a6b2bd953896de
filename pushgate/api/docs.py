"""The interactive API docs (`/docs`: Swagger UI, `/redoc`: ReDoc), served with their scripts
and styles from an installed package (fastapi-offline ships both builds), not a CDN: they work
offline and behind a firewall that lets no page reach the internet."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"


def _assets() -> Path:
    return Path(str(resources.files("fastapi_offline") / "static"))


def install(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """Serve /docs, /redoc and the files they load. Build `app` with `docs_url=None,
    redoc_url=None`, or FastAPI adds its own CDN-backed pages first."""
    app.mount(ASSETS_PATH, StaticFiles(directory=_assets()), name="docs-assets")

    def base(request: Request) -> str:
        # Behind a proxy that mounts pushgate under a prefix, as FastAPI's own pages do.
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = base(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            # Swagger UI would otherwise show a badge fetched from its public validator,
            # handing it the address of this API's document.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = base(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
