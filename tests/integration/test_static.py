"""The dashboards' static route (api/static.c, issue 15): content types,
validators, gzip, caching, security headers and path confinement."""

import gzip
import os

import pytest

from conftest import ROOT, http_raw, request

BIG_JS = "export const x = 1;\n" + "// padding so gzip applies\n" * 200


@pytest.fixture
def webroot(tmp_path):
    root = tmp_path / "web"
    (root / "vendor").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>c</title>")
    (root / "admin.html").write_text("<!doctype html><title>a</title>")
    (root / "app.js").write_text(BIG_JS)
    (root / "style.css").write_text("body{color:red}")
    (root / "data.json").write_text("{}")
    (root / "vendor" / "lib-1.2.3.js").write_text(BIG_JS)
    (root / ".hidden").write_text("secret")
    (tmp_path / "outside.txt").write_text("outside the root")
    os.symlink(str(tmp_path / "outside.txt"), str(root / "escape.txt"))
    os.symlink(str(root / "style.css"), str(root / "inside.css"))
    return root


@pytest.fixture
def srv(server, webroot):
    return server(workers=1, args=["--web-dir", str(webroot)], env={"DATABASE_URL": None})


def test_pages_and_content_types(srv):
    for path, ctype, start in [
        ("/", "text/html; charset=utf-8", b"<!doctype html><title>c"),
        ("/admin", "text/html; charset=utf-8", b"<!doctype html><title>a"),
        ("/web/app.js", "text/javascript; charset=utf-8", b"export const x"),
        ("/web/style.css", "text/css; charset=utf-8", b"body{"),
        ("/web/data.json", "application/json", b"{}"),
        ("/web/vendor/lib-1.2.3.js", "text/javascript; charset=utf-8", b"export"),
    ]:
        st, h, body = request(srv.port, "GET", path)
        assert st == 200, path
        assert h["content-type"] == ctype, path
        assert (body if isinstance(body, bytes) else b"{}").startswith(start), path
        assert h["x-content-type-options"] == "nosniff"


def test_csp_is_strict(srv):
    st, h, _ = request(srv.port, "GET", "/")
    csp = h["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert directives["frame-ancestors"] == "'none'"


def test_etag_and_304(srv, webroot):
    st, h, body = request(srv.port, "GET", "/web/style.css")
    etag = h["etag"]
    assert st == 200 and etag.startswith('"') and h["cache-control"] == "no-cache"
    st, h2, body2 = request(srv.port, "GET", "/web/style.css", headers={"If-None-Match": etag})
    assert st == 304 and body2 == b"" and h2["etag"] == etag
    st, _, _ = request(srv.port, "GET", "/web/style.css", headers={"If-None-Match": "W/" + etag})
    assert st == 304  # weak comparison
    st, _, _ = request(srv.port, "GET", "/web/style.css", headers={"If-None-Match": '"other", ' + etag})
    assert st == 304
    st, _, _ = request(srv.port, "GET", "/web/style.css", headers={"If-None-Match": '"other"'})
    assert st == 200
    # A changed file is a new representation: the old tag no longer matches.
    p = webroot / "style.css"
    p.write_text("body{color:blue;margin:0}")
    st, h3, body3 = request(srv.port, "GET", "/web/style.css", headers={"If-None-Match": etag})
    assert st == 200 and h3["etag"] != etag and body3 == b"body{color:blue;margin:0}"


def test_gzip_when_accepted(srv):
    st, h, body = request(srv.port, "GET", "/web/app.js", headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert st == 200 and h["content-encoding"] == "gzip" and "Accept-Encoding" in h["vary"]
    assert gzip.decompress(body).decode() == BIG_JS
    assert int(h["content-length"]) == len(body) < len(BIG_JS)
    gz_tag = h["etag"]
    st, h, body = request(srv.port, "GET", "/web/app.js")
    assert "content-encoding" not in h and body.decode() == BIG_JS
    assert h["etag"] != gz_tag  # each coding its own tag
    st, h, body = request(srv.port, "GET", "/web/app.js", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in h and body.decode() == BIG_JS
    st, h, _ = request(srv.port, "GET", "/web/app.js", headers={"Accept-Encoding": "gzip", "If-None-Match": gz_tag})
    assert st == 304


def test_small_files_are_not_gzipped(srv):
    st, h, body = request(srv.port, "GET", "/web/style.css", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in h and body == b"body{color:red}"


def test_vendor_files_are_immutable(srv):
    st, h, _ = request(srv.port, "GET", "/web/vendor/lib-1.2.3.js")
    assert st == 200 and h["cache-control"] == "public, max-age=31536000, immutable"


def test_head(srv):
    st, h, body = request(srv.port, "HEAD", "/web/app.js")
    assert st == 200 and body == b"" and int(h["content-length"]) == len(BIG_JS)


@pytest.mark.parametrize(
    "path",
    [
        "/web/../outside.txt",
        "/web/..%2foutside.txt",
        "/web/%2e%2e/outside.txt",
        "/web/%2e%2e%2foutside.txt",
        "/web/%2E%2E",
        "/web/vendor/..%2f..%2foutside.txt",
        "/web/.hidden",
        "/web/%2ehidden",
        "/web/app.js%00.css",
        "/web/escape.txt",
        "/web/missing.js",
        "/web/vendor",
        "/web/a/b/c",
        "/web/%2fetc%2fpasswd",
        "/web/..",
    ],
)
def test_no_escape_from_the_root(srv, path):
    st, h, body = request(srv.port, "GET", path)
    assert st in (400, 404), path
    assert b"outside the root" not in (body if isinstance(body, bytes) else str(body).encode())
    assert b"secret" not in (body if isinstance(body, bytes) else str(body).encode())


def test_raw_dot_segments(srv):
    # Sent raw, without a client normalising the path first.
    out = http_raw(srv.port, b"GET /web/../../outside.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"outside the root" not in out
    assert out.startswith(b"HTTP/1.1 404") or out.startswith(b"HTTP/1.1 400")


def test_symlink_inside_root_is_served(srv):
    st, _, body = request(srv.port, "GET", "/web/inside.css")
    assert st == 200 and body == b"body{color:red}"


def test_repo_pages_and_chart_library(server):
    """The repository's own web/ (the default --web-dir): both pages and uPlot
    from web/vendor (scripts/web-vendor.sh)."""
    srv = server(workers=1, env={"DATABASE_URL": None})
    for path in ("/", "/admin"):
        st, h, body = request(srv.port, "GET", path)
        assert st == 200 and h["content-type"].startswith("text/html"), path
        assert b"<script type=\"module\"" in body and b"<script>" not in body and b"<style" not in body
    vendor = [f for f in os.listdir(os.path.join(ROOT, "web", "vendor")) if f.endswith(".esm.js")]
    assert vendor, "run scripts/web-vendor.sh"
    st, h, body = request(srv.port, "GET", "/web/vendor/" + vendor[0])
    assert st == 200 and b"uPlot" in body and "immutable" in h["cache-control"]
