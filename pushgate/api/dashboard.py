"""The web dashboard at /dashboard: one HTML shell for every dashboard address (the app routes
in the browser, so a deep link such as /dashboard/notifications/<id> loads it too) and its
scripts and styles under /dashboard/static. The shell holds no data: the page signs in with an
admin key and reads everything from /v1 with it."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DASHBOARD = Path(__file__).resolve().parent.parent / "web" / "dashboard"
STATIC_PATH = "/dashboard/static"
# The shell's one placeholder: where pushgate is mounted (a proxy may add a prefix).
ROOT = "{{root}}"


def install(app: FastAPI) -> None:
    """Serve the dashboard. Its static files are mounted before the shell's catch-all route,
    so /dashboard/static/* is never answered with the shell."""
    app.mount(STATIC_PATH, StaticFiles(directory=DASHBOARD / "static"), name="dashboard-static")
    shell = (DASHBOARD / "index.html").read_text(encoding="utf-8")

    def page(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        # A page rebuilt from whatever the server has now: never cached, so an upgrade's new
        # script names are picked up at the next load.
        return HTMLResponse(shell.replace(ROOT, root), headers={"Cache-Control": "no-cache"})

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard(request: Request) -> HTMLResponse:
        return page(request)

    @app.get("/dashboard/{address:path}", include_in_schema=False)
    async def dashboard_address(request: Request, address: str) -> HTMLResponse:
        return page(request)
