"""The voice page's files as the gateway serves them: headers, caching, auth, nothing external."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.routes.page import FILES, load_files
from tests.gateway.conftest import gateway_settings


def test_index_has_security_headers_and_is_public_with_keys_on() -> None:
    with TestClient(create_app(gateway_settings(api_keys="secret"))) as client:
        response = client.get("/")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        assert "connect-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "microphone=(self)" in response.headers["permissions-policy"]
        # The shell is public; what it calls is not.
        assert client.get("/page/app.js").status_code == 200
        assert client.get("/api/voice/voices").status_code == 401


def test_every_file_is_served_with_its_type_and_an_etag() -> None:
    with TestClient(create_app(gateway_settings())) as client:
        for name, media_type in FILES.items():
            response = client.get(f"/page/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == media_type
            assert response.headers["cache-control"] == "no-cache"
            again = client.get(f"/page/{name}", headers={"If-None-Match": response.headers["etag"]})
            assert again.status_code == 304
            assert again.content == b""


def test_unknown_files_are_not_found_and_nothing_escapes_the_folder() -> None:
    with TestClient(create_app(gateway_settings())) as client:
        for path in ("/page/nope.js", "/page/..%2Fapp.py", "/page/%2e%2e%2fsettings.py", "/page/"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert "def " not in response.text


def test_the_page_can_be_turned_off() -> None:
    with TestClient(create_app(gateway_settings(page=False))) as client:
        assert client.get("/").status_code == 404
        assert client.get("/page/app.js").status_code == 404


def test_the_page_loads_nothing_from_elsewhere() -> None:
    """Offline and behind any path prefix: only relative URLs, no CDN, no external fonts."""
    for name, file in load_files().items():
        if name.endswith(".svg"):
            continue
        text = file.body.decode()
        assert not re.search(r"""(src|href)=["'](https?:)?//""", text), name
        assert not re.search(r"""(src|href)=["']/""", text), name  # root-relative breaks under a prefix
        for absolute in ('fetch("/', "fetch('/", "@import", "url(http"):
            assert absolute not in text, (name, absolute)
