"""Pinning: maps land on bpffs (mounted when missing), are adopted by the next load, and a
layout-version mismatch is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path

import pytest

from myapp.fastpath import shared
from myapp.fastpath.loader import libbpf
from myapp.fastpath.loader.datapath import Datapath
from myapp.fastpath.testsupport import require_root


@pytest.fixture
def pins() -> Iterator[Path]:
    require_root("pinning BPF maps")
    path = Path(f"/sys/fs/bpf/fastpath-dp-test-{uuid.uuid4().hex[:12]}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_maps_are_pinned_and_adopted(pins: Path) -> None:
    with Datapath(pins) as first:
        assert not first.adopted
        libbpf.map_update(
            first.map_fds[shared.MAP_RULE_META],
            (7).to_bytes(4, "little"),
            bytes(shared.RuleMeta(revision=3)),
        )
    assert sorted(p.name for p in pins.iterdir()) == sorted(shared.PINNED_MAPS)
    with Datapath(pins) as second:
        assert second.adopted
        raw = libbpf.map_lookup(
            second.map_fds[shared.MAP_RULE_META],
            (7).to_bytes(4, "little"),
            len(bytes(shared.RuleMeta())),
        )
        assert raw is not None and shared.RuleMeta.from_buffer_copy(raw).revision == 3


def test_a_restart_replaces_the_protected_prefixes_exactly(pins: Path) -> None:
    def held(dp: Datapath) -> set[bytes]:
        return {
            *libbpf.map_keys(dp.map_fds[shared.MAP_PROTECTED_V4], 8),
            *libbpf.map_keys(dp.map_fds[shared.MAP_PROTECTED_V6], 20),
        }

    first_set = [ip_network("10.0.0.0/8"), ip_network("192.0.2.0/24"), ip_network("fd00::/8")]
    with Datapath(pins, protected=first_set) as first:
        assert held(first) == {
            bytes([8, 0, 0, 0, 10, 0, 0, 0]),
            bytes([24, 0, 0, 0, 192, 0, 2, 0]),
            bytes([8, 0, 0, 0, 0xFD]) + bytes(15),
        }
    with Datapath(pins, protected=[ip_network("192.0.2.0/24")]) as second:
        assert held(second) == {bytes([24, 0, 0, 0, 192, 0, 2, 0])}
    with Datapath(pins) as third:
        assert held(third) == set()


def test_same_program_means_same_code_maps_and_settings(pins: Path) -> None:
    """What lets a restarted agent keep the attached program: a second load of the object over
    the same pins with the same settings; another .rodata (a setting), or other maps, is not."""
    with Datapath(pins) as first, Datapath(pins) as again:
        assert libbpf.same_program(first.program_fd, again.program_fd)
        with Datapath(pins, drop_malformed=True) as other_setting:
            assert not libbpf.same_program(first.program_fd, other_setting.program_fd)
        with Datapath() as private_maps:
            assert not libbpf.same_program(first.program_fd, private_maps.program_fd)


def test_same_program_from_the_fds_held_without_lookups_by_id(pins: Path) -> None:
    """Without CAP_SYS_ADMIN no map can be opened by id: the .rodata of both programs comes from
    fds the caller holds (its object's, the pin's). One that is not held is not the same."""
    with Datapath(pins) as first, Datapath(pins) as again:
        assert [name.endswith(".rodata") for name in first.own_map_fds] == [True]
        with Datapath(pins, drop_malformed=True) as other:
            held = [
                *first.own_map_fds.values(),
                *again.own_map_fds.values(),
                *other.own_map_fds.values(),
            ]
            assert libbpf.same_program(first.program_fd, again.program_fd, held)
            assert not libbpf.same_program(first.program_fd, other.program_fd, held)
        only_first = list(first.own_map_fds.values())
        assert not libbpf.same_program(first.program_fd, again.program_fd, only_first)


def test_another_layout_version_is_refused(pins: Path) -> None:
    with Datapath(pins) as first:
        cfg = shared.Config(layout_version=shared.LAYOUT_VERSION + 1)
        libbpf.map_update(first.map_fds[shared.MAP_CONFIG], bytes(4), bytes(cfg))
    with pytest.raises(libbpf.PinnedMapMismatch, match="layout version"):
        Datapath(pins)


def test_bpffs_is_mounted_when_missing(pins: Path) -> None:
    """In a private mount namespace without bpffs at /sys/fs/bpf, loading mounts it."""
    if not shutil.which("unshare"):
        pytest.fail("unshare (util-linux) is needed for this test")
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from myapp.fastpath.loader.datapath import Datapath, _is_bpffs
        assert not _is_bpffs(Path("/sys/fs/bpf"))
        with Datapath(Path("{pins}")) as dp:
            assert not dp.adopted
        assert _is_bpffs(Path("/sys/fs/bpf"))
        print("mounted")
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            f'while umount /sys/fs/bpf 2>/dev/null; do :; done; exec "{sys.executable}" -c "$0"',
            script,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mounted"
    assert not pins.exists(), "the private mount must not leak into this namespace"
