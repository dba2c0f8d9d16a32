"""/api/docs: Swagger UI from the API's own files, under a strict Content-Security-Policy."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from myapp.api.conftest import make_config, running_app
from myapp.api.docs import ASSET_PATHS, DOCS_CSP, INIT_PATH, SWAGGER_UI_VERSION, SwaggerUiFiles
from myapp.api.testdb import create_test_database


@pytest.fixture(scope="module")
def docs_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    database = create_test_database("sqlite", tmp_path_factory.mktemp("docs"))
    with running_app(make_config(database)) as application:
        yield application


@pytest.fixture()
def client(docs_app: Flask) -> FlaskClient:
    return docs_app.test_client()


def test_the_page_loads_only_this_origins_files(client: FlaskClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"] == DOCS_CSP
    html = page.get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert set(sources) == {*ASSET_PATHS.values(), INIT_PATH, "/api/v1/openapi.json"}
    assert "<script>" not in html  # no inline script: the policy would block it
    init = client.get(INIT_PATH)
    assert init.status_code == 200 and init.mimetype == "text/javascript"
    assert b'"/api/v1/openapi.json"' in init.data


@pytest.mark.parametrize(
    ("name", "mimetype", "marker"),
    [
        ("swagger-ui-bundle.js", "text/javascript", b"SwaggerUIBundle"),
        ("swagger-ui.css", "text/css", b".swagger-ui"),
    ],
)
def test_assets_are_served_compressed_cached_and_revalidated(
    client: FlaskClient, name: str, mimetype: str, marker: bytes
) -> None:
    path = ASSET_PATHS[name]
    assert SWAGGER_UI_VERSION in path
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.mimetype == mimetype
    assert "Content-Encoding" not in plain.headers and marker in plain.data
    assert plain.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    zipped = client.get(path, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(zipped.data) == plain.data
    assert len(zipped.data) < len(plain.data) / 2
    assert zipped.headers["ETag"] != plain.headers["ETag"]  # one per representation
    for response, encoding in ((plain, "identity"), (zipped, "gzip")):
        headers = {"If-None-Match": response.headers["ETag"], "Accept-Encoding": encoding}
        again = client.get(path, headers=headers)
        assert again.status_code == 304 and again.data == b""
    stale = {"If-None-Match": plain.headers["ETag"], "Accept-Encoding": "gzip"}
    assert client.get(path, headers=stale).status_code == 200
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


def test_json_answers_forbid_running_or_framing_anything(client: FlaskClient) -> None:
    for path in ("/healthz", "/api/v1/openapi.json", "/api/v1/users", "/api/v1/nothing-here"):
        policy = client.get(path).headers["Content-Security-Policy"]
        assert policy == "default-src 'none'; frame-ancestors 'none'", path


def test_a_missing_tarball_is_named() -> None:
    files = SwaggerUiFiles(tarball="swagger-ui-dist-0.0.0.tgz")
    with pytest.raises(FileNotFoundError, match=r"swagger-ui-dist-0\.0\.0\.tgz"):
        files.get("swagger-ui.css")
