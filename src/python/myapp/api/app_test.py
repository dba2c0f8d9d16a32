from myapp.api.app import create_app


def test_healthz() -> None:
    response = create_app().test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
