"""The playground's files and routes, without a browser or a model: what is served, with which
headers, and static guards on the page's code (no HTML sinks, no other hosts)."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from qwenkit.server.playground import (
    CONTENT_SECURITY_POLICY,
    mount_playground,
    playground_paths,
    static_files,
)

# Ways a script could turn text into markup or code; the page must use none of them.
HTML_SINKS = re.compile(
    r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\(|new Function\b|"
    r"createContextualFragment|DOMParser|setAttribute\(\s*[\"']on"
)


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    mount_playground(app)
    return TestClient(app)


def test_index_and_every_static_file_are_served_with_the_csp(client: TestClient) -> None:
    kinds = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for path in sorted(playground_paths()):
        resp = client.get(path)
        assert resp.status_code == 200, path
        suffix = "." + (path.rsplit(".", 1)[-1] if "." in path else "html")
        assert resp.headers["content-type"].startswith(kinds[suffix]), path
        assert resp.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert resp.headers["x-content-type-options"] == "nosniff"
    assert client.get("/").content == static_files()["index.html"]


def test_the_csp_allows_only_this_origin() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'self'"
    for name in ("script-src", "style-src", "connect-src", "font-src"):
        assert directives[name] == "'self'", name
    # Attached pictures are shown from the data: URLs the page itself made; no other origin loads.
    assert directives["img-src"] == "'self' data:"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"


def test_unknown_or_traversing_names_are_404(client: TestClient) -> None:
    for path in ("/static/missing.js", "/static/playground.py", "/static/..%2Fplayground.py", "/static/"):
        assert client.get(path).status_code == 404, path


def test_the_page_is_complete_and_references_only_its_own_files() -> None:
    files = static_files()
    assert {"index.html", "app.js", "style.css", "markdown.js", "codehl.js"} <= set(files)
    html = files["index.html"].decode()
    refs = re.findall(r"(?:src|href)=\"([^\"]+)\"", html)
    assert refs and all(ref.startswith("/static/") and ref[len("/static/") :] in files for ref in refs)
    for name, body in files.items():
        if name.endswith(".js"):
            text = body.decode()
            for module in re.findall(r"from \"\./([^\"]+)\"", text):
                assert module in files, f"{name} imports a missing {module}"
            assert HTML_SINKS.search(text) is None, f"{name} uses an HTML sink"
            assert re.search(r"fetch\(\s*[\"'`]https?:", text) is None, f"{name} fetches another host"
        if name.endswith((".css", ".html")):
            assert "@import" not in body.decode() and "url(http" not in body.decode(), name
