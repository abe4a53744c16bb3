"""The page's files: served at / and /ui/ without a key (like /docs), kept to this origin by a
Content-Security-Policy, nothing outside service/static/ reachable, and counted under two
route labels rather than one per file."""

from __future__ import annotations

import re
from pathlib import Path

from .conftest import make_app_client
from .test_metrics import scrape, value

STATIC = Path(__file__).resolve().parents[2] / "service" / "static"


def test_the_page_loads_without_a_key_and_names_only_its_own_files(tmp_path: Path) -> None:
    with make_app_client(tmp_path, api_key="k-123456") as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-request-id"]
        linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert all(re.match(r"^(/[a-z]|#)", u) for u in linked), linked  # no other origin
        for url in (u for u in linked if u.startswith("/ui/")):
            assert client.get(url).status_code == 200, url
        assert (
            client.get("/ui/app.js")
            .headers["content-type"]
            .startswith(("text/javascript", "application/javascript"))
        )
        assert client.head("/").status_code == 200
        assert client.get("/v1/collections").status_code == 401  # the API still needs it
        s = scrape(client, authorization="Bearer k-123456")
    assert value(s, "vp_http_requests_total", route="/", status="200", method="GET") == 1
    assert value(s, "vp_http_requests_total", route="/ui/{file}", status="200", method="GET") >= 3


def test_nothing_else_is_served_from_there(tmp_path: Path) -> None:
    assert not any(p.suffix == ".py" for p in STATIC.iterdir())
    with make_app_client(tmp_path) as client:
        missing = client.get("/ui/nope.js")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        for sneaky in ("/ui/../app.py", "/ui/%2e%2e/app.py", "/ui/..%2fapp.py"):
            r = client.get(sneaky)
            assert r.status_code == 404 and "create_app" not in r.text, sneaky
        assert client.post("/", json={}).status_code in (404, 405)  # only GET and HEAD
