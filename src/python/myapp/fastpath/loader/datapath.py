"""The loaded XDP program and its maps: pinned under a bpffs directory so that rules and counters
outlive the agent, adopted on restart when their layout matches, refused otherwise."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from myapp.fastpath import shared
from myapp.fastpath.bpf import object_path
from myapp.fastpath.loader import libbpf
from myapp.fastpath.rules import Network, replace_protected, sum_counters

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]


def _is_bpffs(path: Path) -> bool:
    # statfs f_type is not exposed by os; /proc/self/mounts lists the bpf mounts.
    target = str(path.resolve())
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target and line.split()[2] == "bpf" for line in mounts)


def ensure_bpffs(pin_dir: Path) -> None:
    """Create `pin_dir` on a bpf filesystem, mounting bpffs at /sys/fs/bpf when it is absent."""
    root = Path("/sys/fs/bpf")
    under_root = str(pin_dir.resolve()).startswith(str(root) + "/")
    if (
        under_root
        and not _is_bpffs(root)
        and _libc.mount(b"bpf", str(root).encode(), b"bpf", 0, None) != 0
    ):
        err = ctypes.get_errno()
        raise OSError(err, f"cannot mount bpffs at {root}: {os.strerror(err)}")
    pin_dir.mkdir(parents=True, exist_ok=True)


class Datapath:
    """The XDP object loaded with its maps; `pin_dir=None` keeps the maps private (tests).

    `protected`: the source prefixes passed before any rule; the tries are made to hold exactly
    these (pinned tries of an earlier agent included), and none skips the lookup altogether.
    """

    def __init__(
        self,
        pin_dir: Path | None = None,
        drop_malformed: bool = False,
        bpf_object: Path | None = None,
        protected: Sequence[Network] = (),
    ) -> None:
        if pin_dir is not None:
            ensure_bpffs(pin_dir)
        settings = shared.Settings(
            drop_malformed=int(drop_malformed), protected_prefixes=int(bool(protected))
        )
        self.pin_dir = pin_dir
        self.obj = libbpf.BpfObject(
            bpf_object or object_path(),
            pin_dir=pin_dir,
            pin_maps=shared.PINNED_MAPS if pin_dir is not None else (),
            rodata=bytes(settings),
        )
        try:
            self.program_fd = self.obj.program_fd(shared.PROGRAM_NAME)
            self.map_fds = {name: self.obj.map_fd(name) for name in shared.PINNED_MAPS}
            # The program's maps of its own (its .rodata): pinned beside the attached program
            # so that the next agent can compare settings (loader.attach).
            self.own_map_fds = {
                name: fd for name, fd in self.obj.map_fds().items() if name not in self.map_fds
            }
            self._check_layout()
            replace_protected(self.map_fds, protected)
        except BaseException:
            self.obj.close()
            raise

    @property
    def adopted(self) -> bool:
        """True when the maps came from an earlier agent's pins."""
        return bool(self.obj.adopted)

    def _check_layout(self) -> None:
        key = struct.pack("<I", 0)
        fd = self.map_fds[shared.MAP_CONFIG]
        cfg = shared.Config.from_buffer_copy(libbpf.array_get(fd, 0, ctypes.sizeof(shared.Config)))
        if cfg.layout_version == 0:
            cfg.layout_version = shared.LAYOUT_VERSION
            libbpf.map_update(fd, key, bytes(cfg))
        elif cfg.layout_version != shared.LAYOUT_VERSION:
            raise libbpf.PinnedMapMismatch(
                22,
                f"maps pinned under {self.pin_dir} were written with layout version "
                f"{cfg.layout_version}, this agent uses {shared.LAYOUT_VERSION}; remove "
                f"{self.pin_dir} to start fresh (its rules and counters are lost)",
            )

    def counters(self) -> dict[shared.Counter, tuple[int, int]]:
        fd = self.map_fds[shared.MAP_COUNTERS]
        return {
            c: sum_counters(libbpf.percpu_lookup(fd, struct.pack("<I", c), 16))
            for c in shared.Counter
        }

    def parse_errors(self) -> dict[shared.ParseError, tuple[int, int]]:
        fd = self.map_fds[shared.MAP_PARSE_ERRORS]
        return {
            e: sum_counters(libbpf.percpu_lookup(fd, struct.pack("<I", e), 16))
            for e in shared.ParseError
            if e != shared.ParseError.NONE
        }

    def test_run(self, packet: bytes, repeat: int = 1) -> int:
        """Verdict of the program on `packet` (BPF_PROG_TEST_RUN)."""
        verdict, _ = libbpf.prog_test_run(self.program_fd, packet, repeat)
        return verdict

    def close(self) -> None:
        self.obj.close()

    def __enter__(self) -> Datapath:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
