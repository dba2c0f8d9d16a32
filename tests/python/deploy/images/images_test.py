"""Build every service image with podman and run it the way the manifests do.

Needs root, podman, runc and debootstrap (scripts/setup.sh installs them): without them the test
skips with the reason, or fails when CI=true. Base images are made once by
scripts/images-base.sh (~2 min cold once per machine; then re-imported from its rootfs tarball
cache in seconds). Every container, pod, image tag, network namespace and bpffs mount made here
has a unique name and is removed at the end.

podman's global storage (/var/lib/containers) is never used: each run gets a private storage (its
own storage.conf, graphroot and runroot in a temp dir) selected with CONTAINERS_STORAGE_CONF, so
whatever other podman users do to theirs (concurrent builds, dangling layers, killed runs) cannot
break this test, and this test leaves nothing there. The temp dir is unmounted and deleted at the
end; one left by a killed run (its lock no longer held) is removed by the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.architecture import FASTPATH_CAPABILITIES
from deploy.manifests import repo_root

ROOT = repo_root()
RUN_ID = uuid.uuid4().hex[:8]
TAG = f"test-{RUN_ID}"
IMAGES = {
    "api": "src/python/myapp/api",
    "webui": "src/js/webui",
    "fastpath": "src/python/myapp/fastpath",
    "connector": "src/python/myapp/connector",
}
CAP_BITS = {"NET_ADMIN": 12, "NET_RAW": 13, "PERFMON": 38, "BPF": 39}
ADMIN_PASSWORD = "image-test-" + secrets.token_hex(8)


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (rootful podman, network namespaces, bpffs)"
    for tool in ("podman", "runc", "debootstrap", "ip"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (scripts/setup.sh installs it)"
    return None


def podman(
    *args: str, check: bool = True, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(  # noqa: S603
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,  # noqa: S607
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}\n{proc.stderr}")
    return proc


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 90) -> None:
    """Poll `probe` (a health check: there is no event to wait on) until it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def healthy(container: str) -> Callable[[], bool]:
    """The image's own HEALTHCHECK, run on demand."""
    return lambda: podman("healthcheck", "run", container, check=False).returncode == 0


def logs(container: str) -> str:
    return (
        podman("logs", container, check=False).stdout
        + podman("logs", container, check=False).stderr
    )


STORAGE_PREFIX = "myapp-images-test-"


def _storage_env(storage_conf: Path) -> dict[str, str]:
    return {**os.environ, "CONTAINERS_STORAGE_CONF": str(storage_conf)}


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` (overlay layers, the driver bind mount), deepest first."""
    prefix = str(root)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _drop_storage(root: Path) -> None:
    """Remove every container and pod of a private storage, unmount what it mounted, delete it.

    Not `podman system reset`: it also deletes podman's tmp dir (/run/libpod), shared with every
    other podman user of this machine.
    """
    conf = root / "storage.conf"
    if conf.exists():
        env = _storage_env(conf)
        podman("pod", "rm", "-a", "-f", "-t", "0", check=False, env=env)
        podman("rm", "-a", "-f", "-t", "0", check=False, env=env)
    for point in _mounts_under(root):
        if subprocess.run(["umount", point], check=False).returncode != 0:  # noqa: S603, S607
            subprocess.run(["umount", "-l", point], check=True)  # noqa: S603, S607
    shutil.rmtree(root)


def _remove_stale_storages() -> None:
    """Private storages of runs killed before their clean-up: their lock is no longer held.

    A minute's grace covers a run between creating its temp dir and taking the lock.
    """
    for root in Path(tempfile.gettempdir()).glob(STORAGE_PREFIX + "*"):
        if time.time() - root.stat().st_mtime < 60:
            continue
        lock = root / "lock"
        with lock.open("a") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live run's
            _drop_storage(root)


@contextlib.contextmanager
def private_storage() -> Iterator[Path]:
    """A podman storage of our own, locked while in use, selected for every podman call."""
    _remove_stale_storages()
    root = Path(tempfile.mkdtemp(prefix=f"{STORAGE_PREFIX}{RUN_ID}-"))
    lock = (root / "lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    conf = root / "storage.conf"
    conf.write_text(
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{root / "root"}"\n'
        f'runroot = "{root / "run"}"\n'
    )
    previous = os.environ.get("CONTAINERS_STORAGE_CONF")
    os.environ["CONTAINERS_STORAGE_CONF"] = str(conf)
    try:
        yield root
    finally:
        if previous is None:
            os.environ.pop("CONTAINERS_STORAGE_CONF", None)
        else:
            os.environ["CONTAINERS_STORAGE_CONF"] = previous
        try:
            _drop_storage(root)
        finally:
            lock.close()


@pytest.fixture(scope="module")
def images() -> Iterator[dict[str, str]]:
    reason = _missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"image test cannot run in CI: {reason}")
        pytest.skip(reason)
    os.environ["CONTAINERS_CONF"] = str(ROOT / "config" / "containers" / "containers.conf")
    with private_storage() as storage:
        print(f"private podman storage: {storage}")
        yield from _build_images()


def _build_images() -> Iterator[dict[str, str]]:
    # A fresh storage: the base images are re-imported from the rootfs tarball cache (seconds;
    # debootstrap ~2 min on a machine without it) and the node 26 image rebuilt on them.
    start = time.monotonic()
    subprocess.run(
        [str(ROOT / "scripts" / "images-base.sh")], check=True, timeout=900
    )  # noqa: S603
    print(f"base images in {time.monotonic() - start:.1f} s")
    built = {}
    try:
        for service, folder in IMAGES.items():
            name = f"localhost/myapp-{service}:{TAG}"
            start = time.monotonic()
            # buildah 1.28 reuses a multi-stage build's cached LABEL layer whatever the build
            # args (the WebUI's version label came out stale): build that one without cache.
            no_cache = ["--no-cache"] if service == "webui" else []
            podman(
                "build", "-q", "--format", "docker", "--pull=never", *no_cache,
                "-f", str(ROOT / folder / "Dockerfile"),
                "--build-arg", "VERSION=0.0.0-test", "--build-arg", f"REVISION={RUN_ID}",
                "-t", name, str(ROOT),
            )  # fmt: skip
            print(f"built {name} in {time.monotonic() - start:.1f} s")
            built[service] = name
        yield built
    finally:
        for name in built.values():
            podman("rmi", "-f", name, check=False)


def test_images_carry_labels_user_and_healthcheck(images: dict[str, str]) -> None:
    for service, name in images.items():
        image = json.loads(podman("image", "inspect", name).stdout)[0]
        config, labels = image["Config"], image["Labels"]
        assert labels["org.opencontainers.image.version"] == "0.0.0-test"
        assert labels["org.opencontainers.image.revision"] == RUN_ID
        assert labels["org.opencontainers.image.source"].startswith("https://")
        assert image["Healthcheck"]["Test"][0] == "CMD"
        assert "curl" not in " ".join(image["Healthcheck"]["Test"])
        expected_user = "0:0" if service == "fastpath" else "10001:10001"
        assert config["User"] == expected_user


@pytest.fixture
def pod(images: dict[str, str]) -> Iterator[str]:
    name = f"myapp-test-{RUN_ID}"
    podman("pod", "create", "--name", name, "-p", "127.0.0.1::3000", "-p", "127.0.0.1::5000")
    yield name
    podman("pod", "rm", "-f", "-t", "2", name, check=False)


def _run_hardened(pod: str, name: str, image: str, *extra: str) -> None:
    """As the manifests run it: read-only root, no capabilities, no privilege escalation."""
    podman(
        "run", "-d", "--pod", pod, "--name", name, "--read-only", "--tmpfs", "/tmp",  # noqa: S108
        "--cap-drop=ALL", "--security-opt", "no-new-privileges", "--health-interval", "disable",
        *extra, image,
    )  # fmt: skip


def _http(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}
    )  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_api_and_webui_serve_a_login_through_the_proxy(images: dict[str, str], pod: str) -> None:
    api, webui = f"{pod}-api", f"{pod}-webui"
    _run_hardened(
        pod, api, images["api"],
        "--tmpfs", "/var/lib/myapp:rw,mode=1777",
        "-e", "APP_ENV=production", "-e", f"JWT_SECRET={secrets.token_hex(32)}",
        "-e", f"ADMIN_PASSWORD={ADMIN_PASSWORD}",
    )  # fmt: skip
    # The pod shares one network namespace: the WebUI reaches the API on loopback.
    _run_hardened(
        pod,
        webui,
        images["webui"],
        "-e",
        "APP_ENV=production",
        "-e",
        "API_URL=http://127.0.0.1:5000",
    )
    try:
        wait_for("the API's HEALTHCHECK", healthy(api))
        wait_for("the WebUI's HEALTHCHECK", healthy(webui))
    except AssertionError as e:
        raise AssertionError(f"{e}\napi:\n{logs(api)}\nwebui:\n{logs(webui)}") from None
    # The pod's published ports (random host ports on loopback), read through a member.
    web_port = podman("port", api, "3000").stdout.strip().rsplit(":", 1)[1]
    api_port = podman("port", api, "5000").stdout.strip().rsplit(":", 1)[1]

    assert _http(f"http://127.0.0.1:{api_port}/healthz") == (200, {"status": "ok"})
    assert _http(f"http://127.0.0.1:{web_port}/healthz")[0] == 200
    status, body = _http(
        f"http://127.0.0.1:{web_port}/api/v1/auth/login",
        {"email": "admin@example.com", "password": ADMIN_PASSWORD},
    )
    assert status == 200, body
    assert body["user"]["email"] == "admin@example.com" and body["user"]["role"] == "admin"
    status, body = _http(
        f"http://127.0.0.1:{web_port}/api/v1/auth/login",
        {"email": "admin@example.com", "password": "wrong-password-123"},
    )
    assert status == 401 and body["error"]["code"] == "invalid_credentials"

    # Non-root, and the root file system really is read-only.
    assert podman("exec", api, "id", "-u").stdout.strip() == "10001"
    assert podman("exec", webui, "touch", "/app/x", check=False).returncode != 0


def test_connector_starts_and_refuses_missing_secrets(images: dict[str, str], pod: str) -> None:
    name = f"{pod}-connector"
    webhooks = [{"name": "x", "url": "https://hooks.example/x", "secret": secrets.token_hex(16)}]
    _run_hardened(
        pod, name, images["connector"], "-e", "APP_ENV=production",
        "-e", f"CONNECTOR_WEBHOOKS={json.dumps(webhooks)}",
        "-e", f"CONNECTOR_INGEST_TOKEN={secrets.token_hex(16)}",
    )  # fmt: skip
    wait_for("the connector's HEALTHCHECK", healthy(name))
    assert "Booting worker" in logs(name)  # gunicorn, not Werkzeug's development server
    proc = podman(
        "run", "--rm", "--read-only", "--cap-drop=ALL", "-e", "APP_ENV=production",
        images["connector"], check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "CONNECTOR_INGEST_TOKEN is required" in proc.stderr


def _seccomp_with_bpf(path: Path) -> Path:
    """podman's default seccomp profile, letting bpf/perf_event_open through with CAP_BPF.

    podman 4.3's profile allows them only with CAP_SYS_ADMIN; Kubernetes' RuntimeDefault
    (containerd >= 1.6) already admits them with CAP_BPF, which is what the manifests rely on.
    """
    profile = json.loads(Path("/usr/share/containers/seccomp.json").read_text())
    names = {"bpf", "perf_event_open"}
    for rule in profile["syscalls"]:
        if rule.get("action") == "SCMP_ACT_ERRNO" and names & set(rule["names"]):
            rule["names"] = [n for n in rule["names"] if n not in names]
    profile["syscalls"].append(
        {"names": sorted(names), "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_BPF"]}}
    )
    path.write_text(json.dumps(profile))
    return path


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A network namespace with a veth pair, and a private bpffs for the agent's pinned maps."""
    name = f"mfp{os.getpid()}{RUN_ID[:4]}"
    bpffs = tmp_path / "bpffs"
    bpffs.mkdir()
    subprocess.run(["ip", "netns", "add", name], check=True)  # noqa: S603, S607
    try:
        for cmd in (
            ["link", "add", "fp0", "type", "veth", "peer", "name", "fp1"],
            ["link", "set", "lo", "up"],
            ["link", "set", "fp0", "up"],
            ["link", "set", "fp1", "up"],
        ):
            subprocess.run(["ip", "-n", name, *cmd], check=True)  # noqa: S603, S607
        subprocess.run(["mount", "-t", "bpf", "bpf", str(bpffs)], check=True)  # noqa: S603, S607
        yield name, bpffs
    finally:
        subprocess.run(["umount", str(bpffs)], check=False)  # noqa: S603, S607
        subprocess.run(["ip", "netns", "del", name], check=False)  # noqa: S603, S607


def test_fastpath_attaches_in_a_netns_with_only_its_capabilities(
    images: dict[str, str], netns: tuple[str, Path], tmp_path: Path
) -> None:
    ns, bpffs = netns
    name = f"myapp-test-{RUN_ID}-fastpath"
    caps = sorted(FASTPATH_CAPABILITIES)
    podman(
        "run", "-d", "--name", name, "--network", f"ns:/run/netns/{ns}", "--read-only",
        "--tmpfs", "/tmp", "--cap-drop=ALL", f"--cap-add={','.join(caps)}",  # noqa: S108
        "--security-opt", "no-new-privileges",
        "--security-opt", f"seccomp={_seccomp_with_bpf(tmp_path / 'seccomp.json')}",
        "--health-interval", "disable", "-v", f"{bpffs}:/sys/fs/bpf",
        "-e", "FASTPATH_INTERFACES=fp0", "-e", "FASTPATH_MODE=generic",
        "-e", "FASTPATH_BPFFS=/sys/fs/bpf",
        # No certificates here: plaintext gRPC is served on loopback only.
        "-e", "FASTPATH_BIND=127.0.0.1",
        # A stopped agent leaves its program attached unless told (no gap across a restart).
        "-e", "FASTPATH_DETACH_ON_EXIT=true", images["fastpath"],
    )  # fmt: skip
    try:
        try:
            wait_for("the fast path's HEALTHCHECK", healthy(name))
        except AssertionError as e:
            raise AssertionError(f"{e}\n{logs(name)}") from None
        link = subprocess.run(  # noqa: S603
            ["ip", "-n", ns, "-d", "link", "show", "dev", "fp0"],  # noqa: S607
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "xdpgeneric" in link and "prog/xdp" in link, link
        status = podman("exec", name, "cat", "/proc/1/status").stdout
        cap_eff = int(
            next(ln for ln in status.splitlines() if ln.startswith("CapEff:")).split()[1], 16
        )
        assert cap_eff == sum(1 << CAP_BITS[c] for c in caps), f"CapEff {cap_eff:#x}"
        assert any(p.name.startswith("fp_") for p in bpffs.iterdir()), "no pinned maps"
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)
    link = subprocess.run(  # noqa: S603
        ["ip", "-n", ns, "link", "show", "dev", "fp0"],
        capture_output=True,
        text=True,
        check=True,  # noqa: S607
    ).stdout
    assert "xdp" not in link, "the agent must detach XDP when it stops"
