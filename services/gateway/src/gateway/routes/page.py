"""The voice page: a few static files served at ``/``, with a strict Content-Security-Policy.

The page shell holds no secret and is public; every API call it makes needs the key when keys are on
(``docs/page.md`` says why). Files are read once, at start-up, and served from memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from voicestack_common.errors import error_body

# Every file the page has: name to media type. Nothing else under the folder is served.
FILES = {
    "index.html": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "capture.js": "text/javascript; charset=utf-8",
    "capture-worklet.js": "text/javascript; charset=utf-8",
    "player.js": "text/javascript; charset=utf-8",
    "transcript.js": "text/javascript; charset=utf-8",
    "voice.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}

# Same origin only: no inline script or style, no eval, no plug-ins, never framed. 'self' in
# connect-src covers ws:// and wss:// on the page's own host (CSP Level 3).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "media-src 'self' blob:",
        "worker-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Revalidate every time (cheap: an ETag answers 304), so an upgrade never mixes old and new files.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class PageFile:
    """One file of the page, as served."""

    body: bytes
    media_type: str
    etag: str


def load_files() -> dict[str, PageFile]:
    """Read the page's files from the package (once, at start-up)."""
    folder = resources.files("gateway") / "web"
    files = {}
    for name, media_type in FILES.items():
        body = (folder / name).read_bytes()
        files[name] = PageFile(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    return files


def page_router() -> APIRouter:
    """``GET /`` and ``GET /page/{name}``."""
    router = APIRouter(tags=["page"], include_in_schema=False)
    files = load_files()

    def answer(request: Request, name: str) -> Response:
        file = files.get(name)
        if file is None:
            return JSONResponse(error_body("not_found", "no such page file"), status_code=404)
        headers = {**SECURITY_HEADERS, "ETag": file.etag}
        if file.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(file.body, media_type=file.media_type, headers=headers)

    @router.get("/")
    async def index(request: Request) -> Response:
        return answer(request, "index.html")

    @router.get("/page/{name}")
    async def asset(request: Request, name: str) -> Response:
        return answer(request, name)

    return router
