"""The one ctypes binding to libbpf.so.1; everything else uses `BpfObject` and the helpers here.

Only the calls the agent needs are declared, each with its C signature, so a wrong argument
fails in ctypes instead of inside libbpf.
"""

from __future__ import annotations

import ctypes as C
import os
from types import TracebackType
from typing import Any

_lib = C.CDLL("libbpf.so.1", use_errno=True)


def _fn(name: str, restype: Any, *argtypes: Any) -> Any:
    fn = getattr(_lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


_open_file = _fn("bpf_object__open_file", C.c_void_p, C.c_char_p, C.c_void_p)
_load = _fn("bpf_object__load", C.c_int, C.c_void_p)
_close = _fn("bpf_object__close", None, C.c_void_p)
_find_program = _fn("bpf_object__find_program_by_name", C.c_void_p, C.c_void_p, C.c_char_p)
_find_map_fd = _fn("bpf_object__find_map_fd_by_name", C.c_int, C.c_void_p, C.c_char_p)
_program_fd = _fn("bpf_program__fd", C.c_int, C.c_void_p)
_get_error = _fn("libbpf_get_error", C.c_long, C.c_void_p)
_num_possible_cpus = _fn("libbpf_num_possible_cpus", C.c_int)
_map_lookup = _fn("bpf_map_lookup_elem", C.c_int, C.c_int, C.c_void_p, C.c_void_p)
_test_run = _fn("bpf_prog_test_run_opts", C.c_int, C.c_int, C.c_void_p)


class BpfError(OSError):
    """A libbpf or bpf() call failed; errno and the call are in the message."""


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = C.get_errno() or -rc
        raise BpfError(err, f"{what}: {os.strerror(err)}")
    return rc


class _TestRunOpts(C.Structure):
    # struct bpf_test_run_opts (libbpf 1.1 bpf.h); `sz` tells libbpf which fields we know.
    _fields_ = [
        ("sz", C.c_size_t),
        ("data_in", C.c_void_p),
        ("data_out", C.c_void_p),
        ("data_size_in", C.c_uint32),
        ("data_size_out", C.c_uint32),
        ("ctx_in", C.c_void_p),
        ("ctx_out", C.c_void_p),
        ("ctx_size_in", C.c_uint32),
        ("ctx_size_out", C.c_uint32),
        ("retval", C.c_uint32),
        ("repeat", C.c_int),
        ("duration", C.c_uint32),
        ("flags", C.c_uint32),
        ("cpu", C.c_uint32),
        ("batch_size", C.c_uint32),
    ]


def possible_cpus() -> int:
    """Number of possible CPUs: the stride count of every per-CPU map value."""
    return int(_check(_num_possible_cpus(), "libbpf_num_possible_cpus"))


class BpfObject:
    """An opened and loaded BPF object file; close() (or `with`) unloads what is not pinned."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        obj = _open_file(self.path.encode(), None)
        if not obj or _get_error(C.c_void_p(obj)):
            err = C.get_errno()
            raise BpfError(err, f"cannot open BPF object {self.path}: {os.strerror(err)}")
        self._obj: int | None = obj
        try:
            _check(_load(obj), f"loading {self.path} into the kernel")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _handle(self) -> int:
        if self._obj is None:
            raise ValueError("BPF object is closed")
        return self._obj

    def program_fd(self, name: str) -> int:
        prog = _find_program(self._handle(), name.encode())
        if not prog:
            raise KeyError(f"no program {name!r} in {self.path}")
        return int(_check(_program_fd(prog), f"fd of program {name}"))

    def map_fd(self, name: str) -> int:
        return int(_check(_find_map_fd(self._handle(), name.encode()), f"fd of map {name}"))

    def close(self) -> None:
        if self._obj is not None:
            _close(self._obj)
            self._obj = None


def percpu_lookup(map_fd: int, key: bytes, value_size: int) -> list[bytes]:
    """Read one key of a per-CPU map: one value per possible CPU, each padded to 8 bytes."""
    stride = (value_size + 7) & ~7
    ncpu = possible_cpus()
    out = C.create_string_buffer(stride * ncpu)
    _check(_map_lookup(map_fd, C.create_string_buffer(key, len(key)), out), "per-CPU map lookup")
    return [out.raw[i * stride : i * stride + value_size] for i in range(ncpu)]


def prog_test_run(program_fd: int, packet: bytes, repeat: int = 1) -> tuple[int, int]:
    """Run an XDP program on `packet` with BPF_PROG_TEST_RUN: (verdict, mean ns per run)."""
    data = C.create_string_buffer(packet, len(packet))
    opts = _TestRunOpts()
    opts.sz = C.sizeof(opts)
    opts.data_in = C.cast(data, C.c_void_p)
    opts.data_size_in = len(packet)
    opts.repeat = repeat
    _check(_test_run(program_fd, C.byref(opts)), "BPF_PROG_TEST_RUN")
    return int(opts.retval), int(opts.duration)
