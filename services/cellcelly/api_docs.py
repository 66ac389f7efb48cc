"""Swagger UI for a service's OpenAPI document, served by the service itself.

FastAPI's own docs page loads Swagger UI from a CDN and starts it with an inline script: blank
offline, and blank behind the MW's Content-Security-Policy (`script-src 'self'`), which is right
to forbid both. Here the page, its scripts and its styles all come from the service (Swagger UI 5's
files as the `fastapi-offline` package ships them, MIT; only the files are used: its routes start
Swagger UI inline), and the start-up script is a file too, so the page works without the internet
under that policy unchanged. (swagger-ui-bundle, the other package of these files, holds Swagger
UI 4, which cannot read OpenAPI 3.1, what FastAPI writes.)
"""

from __future__ import annotations

import html
from importlib import resources

import orjson
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = resources.files("fastapi_offline") / "static"


def page(title: str, base: str) -> str:
    """The docs page: every file it loads is under `base` (the docs' own path)."""
    name = html.escape(title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{name} – API</title>
<link rel="stylesheet" href="{base}/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="{base}/assets/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{base}/assets/swagger-ui-bundle.js"></script>
<script src="{base}/start.js"></script>
</body>
</html>
"""


def start_script(openapi_url: str) -> str:
    """What an inline script would have done: start Swagger UI on the service's document."""
    url = orjson.dumps(openapi_url).decode()
    return (
        "window.ui = SwaggerUIBundle({"
        f"url: {url}, dom_id: '#swagger-ui', deepLinking: true, "
        "presets: [SwaggerUIBundle.presets.apis], layout: 'BaseLayout'});\n"
    )


def add_api_docs(app: FastAPI, docs_url: str) -> None:
    """Serve Swagger UI at `docs_url` for `app.openapi_url` (the app is made with `docs_url=None`).

    Not in the OpenAPI document itself: the page is for people, not an operation of the API.
    """
    if app.openapi_url is None:
        raise ValueError("API docs need the app's OpenAPI document (openapi_url)")
    body = page(app.title, docs_url).encode()
    script = start_script(app.openapi_url).encode()

    @app.get(docs_url, include_in_schema=False)
    async def docs() -> Response:
        return HTMLResponse(body)

    @app.get(f"{docs_url}/start.js", include_in_schema=False)
    async def start() -> Response:
        return Response(script, media_type="text/javascript")

    app.mount(f"{docs_url}/assets", StaticFiles(directory=str(ASSETS)), name="api-docs-assets")
