"""/api/docs: Swagger UI over /api/v1/openapi.json, served entirely by the API.

Swagger UI's files come from the npm package's tarball, which Pants downloads and checks against
its sha256 at build time (the `swagger-ui` resource in BUILD) and puts in the PEX. So the page
works where no CDN is reachable, and a strict Content-Security-Policy lets the browser run only
scripts from this origin. The two files are read from the tarball on the first request for one
of them and kept in memory with a gzip copy (the bundle is 1.7 MB, 0.5 MB gzipped).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import threading
from dataclasses import dataclass

from flask import Blueprint, Response, request

from myapp.common.package_data import find_package_file

SWAGGER_UI_VERSION = "5.35.0"  # keep in step with the `swagger-ui` resource in BUILD
_TARBALL = f"swagger-ui-dist-{SWAGGER_UI_VERSION}.tgz"
_ASSET_TYPES = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
}
# Versioned paths: a new Swagger UI gets new URLs, so browsers may keep these for a year.
ASSET_PATHS = {name: f"/api/docs/{SWAGGER_UI_VERSION}/{name}" for name in _ASSET_TYPES}
INIT_PATH = "/api/docs/init.js"
DOCS_PATHS = ("/api/docs", INIT_PATH, *ASSET_PATHS.values())

# Only this origin's scripts and styles; inline style attributes are Swagger UI's own (React).
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

DOCS_HTML = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>myapp API documentation</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="{ASSET_PATHS["swagger-ui.css"]}">
</head>
<body>
  <noscript>
    <p>The interactive documentation needs JavaScript. The OpenAPI document itself is plain JSON:
    <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p>
  </noscript>
  <p>OpenAPI document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a></p>
  <div id="swagger-ui"></div>
  <script src="{ASSET_PATHS["swagger-ui-bundle.js"]}"></script>
  <script src="{INIT_PATH}"></script>
</body>
</html>
"""

# In a file of its own, not inline: the CSP allows no inline script.
INIT_JS = """window.addEventListener("load", function () {
  window.ui = window.SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false
  });
});
"""


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str
    content_type: str


class SwaggerUiFiles:
    """Swagger UI's files, read from the packaged npm tarball once, on first use."""

    def __init__(self, package: str = __package__ or "myapp.api", tarball: str = _TARBALL) -> None:
        self._package = package
        self._tarball = tarball
        self._assets: dict[str, Asset] | None = None
        self._lock = threading.Lock()

    def get(self, name: str) -> Asset:
        if self._assets is None:
            with self._lock:
                if self._assets is None:
                    self._assets = self._load()
        return self._assets[name]

    def _load(self) -> dict[str, Asset]:
        data = find_package_file(
            self._package, self._tarball, "build through Pants (src/python/myapp/api:swagger-ui)"
        ).read_bytes()
        assets: dict[str, Asset] = {}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for name, content_type in _ASSET_TYPES.items():
                member = archive.extractfile(f"package/{name}")
                if member is None:
                    raise FileNotFoundError(f"{self._tarball} has no package/{name}")
                body = member.read()
                assets[name] = Asset(
                    body=body,
                    gzipped=gzip.compress(body, compresslevel=9, mtime=0),
                    etag=hashlib.sha256(body).hexdigest()[:32],
                    content_type=content_type,
                )
        return assets


bp = Blueprint("docs", __name__)
_files = SwaggerUiFiles()


def _docs_response(body: str, content_type: str) -> Response:
    response = Response(body, content_type=content_type)
    response.headers["Content-Security-Policy"] = DOCS_CSP
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/api/docs")
def docs_page() -> Response:
    return _docs_response(DOCS_HTML, "text/html; charset=utf-8")


@bp.get(INIT_PATH)
def docs_init() -> Response:
    return _docs_response(INIT_JS, "text/javascript; charset=utf-8")


def _asset_response(name: str) -> Response:
    asset = _files.get(name)
    gzipped = "gzip" in request.accept_encodings
    # Each encoding is its own representation, with its own (strong) ETag.
    etag = f"{asset.etag}-gzip" if gzipped else asset.etag
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "ETag": f'"{etag}"',
        "Vary": "Accept-Encoding",
    }
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, content_type=asset.content_type, headers=headers)
    return Response(asset.body, content_type=asset.content_type, headers=headers)


def _register_assets() -> None:
    for name, path in ASSET_PATHS.items():
        bp.add_url_rule(
            path,
            f"asset_{name.replace('.', '_').replace('-', '_')}",
            lambda n=name: _asset_response(n),
        )


_register_assets()
