"""The one ctypes binding to libbpf.so.1; everything else uses `BpfObject` and the helpers here.

Only the calls the agent needs are declared, each with its C signature, so a wrong argument
fails in ctypes instead of inside libbpf.
"""

from __future__ import annotations

import ctypes as C
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
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
_next_map = _fn("bpf_object__next_map", C.c_void_p, C.c_void_p, C.c_void_p)
_map_name = _fn("bpf_map__name", C.c_char_p, C.c_void_p)
_map_type = _fn("bpf_map__type", C.c_int, C.c_void_p)
_map_key_size = _fn("bpf_map__key_size", C.c_uint32, C.c_void_p)
_map_value_size = _fn("bpf_map__value_size", C.c_uint32, C.c_void_p)
_map_max_entries = _fn("bpf_map__max_entries", C.c_uint32, C.c_void_p)
_map_flags = _fn("bpf_map__map_flags", C.c_uint32, C.c_void_p)
_map_set_pin_path = _fn("bpf_map__set_pin_path", C.c_int, C.c_void_p, C.c_char_p)
_map_set_initial_value = _fn(
    "bpf_map__set_initial_value", C.c_int, C.c_void_p, C.c_void_p, C.c_size_t
)
_program_fd = _fn("bpf_program__fd", C.c_int, C.c_void_p)
_get_error = _fn("libbpf_get_error", C.c_long, C.c_void_p)
_num_possible_cpus = _fn("libbpf_num_possible_cpus", C.c_int)
_map_update = _fn("bpf_map_update_elem", C.c_int, C.c_int, C.c_void_p, C.c_void_p, C.c_uint64)
_map_lookup = _fn("bpf_map_lookup_elem", C.c_int, C.c_int, C.c_void_p, C.c_void_p)
_map_delete = _fn("bpf_map_delete_elem", C.c_int, C.c_int, C.c_void_p)
_map_lookup_batch = _fn(
    "bpf_map_lookup_batch",
    C.c_int,
    C.c_int,
    C.c_void_p,
    C.c_void_p,
    C.c_void_p,
    C.c_void_p,
    C.POINTER(C.c_uint32),
    C.c_void_p,
)
_map_update_batch = _fn(
    "bpf_map_update_batch",
    C.c_int,
    C.c_int,
    C.c_void_p,
    C.c_void_p,
    C.POINTER(C.c_uint32),
    C.c_void_p,
)
_map_next_key = _fn("bpf_map_get_next_key", C.c_int, C.c_int, C.c_void_p, C.c_void_p)
_obj_get = _fn("bpf_obj_get", C.c_int, C.c_char_p)
_obj_pin = _fn("bpf_obj_pin", C.c_int, C.c_int, C.c_char_p)
_obj_info = _fn("bpf_obj_get_info_by_fd", C.c_int, C.c_int, C.c_void_p, C.POINTER(C.c_uint32))
_test_run = _fn("bpf_prog_test_run_opts", C.c_int, C.c_int, C.c_void_p)
_xdp_query_id = _fn("bpf_xdp_query_id", C.c_int, C.c_int, C.c_int, C.POINTER(C.c_uint32))
_prog_get_fd_by_id = _fn("bpf_prog_get_fd_by_id", C.c_int, C.c_uint32)
_map_get_fd_by_id = _fn("bpf_map_get_fd_by_id", C.c_int, C.c_uint32)

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_REPLACE = 1 << 4
BPF_MAP_TYPE_ARRAY = 2
BPF_F_RDONLY_PROG = 1 << 7

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)


class BpfError(OSError):
    """A libbpf or bpf() call failed; errno and the call are in the message."""


class PinnedMapMismatch(BpfError):
    """A map pinned under the bpffs path has another layout than this program's map."""


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


class _MapInfo(C.Structure):
    # Leading fields of struct bpf_map_info (linux/bpf.h); the kernel fills what fits.
    _fields_ = [
        ("type", C.c_uint32),
        ("id", C.c_uint32),
        ("key_size", C.c_uint32),
        ("value_size", C.c_uint32),
        ("max_entries", C.c_uint32),
        ("map_flags", C.c_uint32),
        ("name", C.c_char * 16),
    ]


class _ProgInfo(C.Structure):
    # Leading fields of struct bpf_prog_info (linux/bpf.h) up to map_ids.
    _fields_ = [
        ("type", C.c_uint32),
        ("id", C.c_uint32),
        ("tag", C.c_uint8 * 8),
        ("jited_prog_len", C.c_uint32),
        ("xlated_prog_len", C.c_uint32),
        ("jited_prog_insns", C.c_uint64),
        ("xlated_prog_insns", C.c_uint64),
        ("load_time", C.c_uint64),
        ("created_by_uid", C.c_uint32),
        ("nr_map_ids", C.c_uint32),
        ("map_ids", C.c_uint64),
    ]


@dataclass(frozen=True)
class MapLayout:
    """What must agree between a pinned map and the map a program expects."""

    type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int

    def differences(self, other: MapLayout) -> list[str]:
        return [
            f"{field} {getattr(self, field)} (program expects {getattr(other, field)})"
            for field in ("type", "key_size", "value_size", "max_entries", "map_flags")
            if getattr(self, field) != getattr(other, field)
        ]


def possible_cpus() -> int:
    """Number of possible CPUs: the stride count of every per-CPU map value."""
    return int(_check(_num_possible_cpus(), "libbpf_num_possible_cpus"))


def _buf(data: bytes) -> C.Array[C.c_char]:
    return C.create_string_buffer(data, len(data))


def obj_get(path: str | os.PathLike[str]) -> int:
    """fd of a pinned BPF object (bpf_obj_get); the caller closes it."""
    return int(_check(_obj_get(os.fspath(path).encode()), f"bpf_obj_get {path}"))


def map_layout(map_fd: int) -> MapLayout:
    info = _MapInfo()
    size = C.c_uint32(C.sizeof(info))
    _check(_obj_info(map_fd, C.byref(info), C.byref(size)), "bpf_obj_get_info_by_fd (map)")
    return MapLayout(info.type, info.key_size, info.value_size, info.max_entries, info.map_flags)


def obj_pin(fd: int, path: str | os.PathLike[str]) -> None:
    """Pin a program or map at `path` on a bpffs (bpf_obj_pin): it then lives as long as the pin,
    and bpf_obj_get reopens it with file permissions only (no CAP_SYS_ADMIN)."""
    _check(_obj_pin(fd, os.fspath(path).encode()), f"bpf_obj_pin {path}")


def prog_fd_by_id(prog_id: int) -> int:
    """fd of the loaded program `prog_id` (the caller closes it). The kernel allows this only
    with CAP_SYS_ADMIN: EPERM otherwise (CAP_BPF is not enough)."""
    return int(_check(_prog_get_fd_by_id(prog_id), f"bpf_prog_get_fd_by_id {prog_id}"))


def prog_id(prog_fd: int) -> int:
    """Kernel id of the program behind `prog_fd` (what netlink reports as attached)."""
    return int(_prog_info(prog_fd).id)


def map_id(map_fd: int) -> int:
    info = _MapInfo()
    size = C.c_uint32(C.sizeof(info))
    _check(_obj_info(map_fd, C.byref(info), C.byref(size)), "bpf_obj_get_info_by_fd (map)")
    return int(info.id)


def _prog_info(prog_fd: int, map_ids: C.Array[C.c_uint32] | None = None) -> _ProgInfo:
    info = _ProgInfo()
    if map_ids is not None:
        info.nr_map_ids = len(map_ids)
        info.map_ids = C.addressof(map_ids)
    size = C.c_uint32(C.sizeof(info))
    _check(_obj_info(prog_fd, C.byref(info), C.byref(size)), "bpf_obj_get_info_by_fd (prog)")
    return info


def _prog_tag_and_maps(prog_fd: int) -> tuple[bytes, list[int]]:
    count = _prog_info(prog_fd).nr_map_ids
    ids = (C.c_uint32 * max(count, 1))()
    info = _prog_info(prog_fd, ids)
    return bytes(info.tag), list(ids)[: min(count, info.nr_map_ids)]


def _frozen_contents(fd: int) -> tuple[bytes, bytes] | None:
    """(name, value) of a read-only-for-programs one-entry array (a .rodata), else None."""
    info = _MapInfo()
    size = C.c_uint32(C.sizeof(info))
    _check(_obj_info(fd, C.byref(info), C.byref(size)), "bpf_obj_get_info_by_fd (map)")
    if not (
        info.type == BPF_MAP_TYPE_ARRAY
        and info.max_entries == 1
        and info.map_flags & BPF_F_RDONLY_PROG
    ):
        return None
    return bytes(info.name), array_get(fd, 0, info.value_size)


def same_program(a_fd: int, b_fd: int, map_fds: Iterable[int] | None = None) -> bool:
    """True when two loaded programs behave alike: the same instructions (tag) over the same
    maps, where a read-only .rodata counts as the same when its contents are equal (each load
    makes its own; the verifier prunes code by its values, which the tag does not see).

    The maps that differ are read through `map_fds` (fds the caller holds: its object's maps, a
    pinned .rodata). Without it they are opened by id, which needs CAP_SYS_ADMIN; a map that
    cannot be read makes the programs count as different (replacing is always safe)."""
    tag_a, maps_a = _prog_tag_and_maps(a_fd)
    tag_b, maps_b = _prog_tag_and_maps(b_fd)
    if tag_a != tag_b or len(maps_a) != len(maps_b):
        return False
    by_id = {map_id(fd): fd for fd in map_fds} if map_fds is not None else {}

    def contents(ident: int) -> tuple[bytes, bytes] | None:
        if ident in by_id:
            return _frozen_contents(by_id[ident])
        if map_fds is not None:
            return None  # not among the caller's fds: unknown, so not provably the same
        fd = int(_check(_map_get_fd_by_id(ident), f"bpf_map_get_fd_by_id {ident}"))
        try:
            return _frozen_contents(fd)
        finally:
            os.close(fd)

    frozen_a = [contents(i) for i in set(maps_a) - set(maps_b)]
    frozen_b = [contents(i) for i in set(maps_b) - set(maps_a)]
    if None in frozen_a or None in frozen_b:
        return False  # a map that is not one and the same, nor a .rodata
    return sorted(filter(None, frozen_a)) == sorted(filter(None, frozen_b))


def map_update(map_fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    _check(_map_update(map_fd, _buf(key), _buf(value), flags), "bpf_map_update_elem")


def map_update_batch(map_fd: int, keys: list[bytes], values: list[bytes]) -> None:
    """Write many keys of an array or hash map in one bpf() call (BPF_MAP_UPDATE_BATCH).

    LPM tries have no batch operations: write those key by key. On an error some keys may have
    been written already (the caller's journal undoes them).
    """
    if len(keys) != len(values):
        raise ValueError("map_update_batch: as many values as keys are needed")
    if not keys:
        return
    count = C.c_uint32(len(keys))
    key_buf = b"".join(keys)
    value_buf = b"".join(values)
    _check(
        _map_update_batch(map_fd, _buf(key_buf), _buf(value_buf), C.byref(count), None),
        f"bpf_map_update_batch ({count.value} of {len(keys)} written)",
    )


def map_lookup(map_fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value under `key`, or None when there is none."""
    out = C.create_string_buffer(value_size)
    if _map_lookup(map_fd, _buf(key), out) < 0:
        err = C.get_errno()
        if err == 2:  # ENOENT
            return None
        raise BpfError(err, f"bpf_map_lookup_elem: {os.strerror(err)}")
    return out.raw


def array_get(map_fd: int, index: int, value_size: int) -> bytes:
    """The value at `index` of an array map (every index always exists)."""
    out = C.create_string_buffer(value_size)
    _check(_map_lookup(map_fd, _buf(index.to_bytes(4, "little")), out), "array map lookup")
    return out.raw


def map_delete(map_fd: int, key: bytes) -> bool:
    """Delete `key`; False when it was not there."""
    if _map_delete(map_fd, _buf(key)) < 0:
        err = C.get_errno()
        if err == 2:
            return False
        raise BpfError(err, f"bpf_map_delete_elem: {os.strerror(err)}")
    return True


def map_keys(map_fd: int, key_size: int) -> Iterator[bytes]:
    """Every key of a hash or LPM map (a snapshot walk; entries may change meanwhile)."""
    prev: C.Array[C.c_char] | None = None
    while True:
        nxt = C.create_string_buffer(key_size)
        if _map_next_key(map_fd, prev, nxt) < 0:
            err = C.get_errno()
            if err == 2:
                return
            raise BpfError(err, f"bpf_map_get_next_key: {os.strerror(err)}")
        yield nxt.raw
        prev = nxt


def percpu_lookup(map_fd: int, key: bytes, value_size: int) -> list[bytes]:
    """Read one key of a per-CPU map: one value per possible CPU, each padded to 8 bytes."""
    stride = (value_size + 7) & ~7
    ncpu = possible_cpus()
    out = C.create_string_buffer(stride * ncpu)
    _check(_map_lookup(map_fd, _buf(key), out), "per-CPU map lookup")
    return [out.raw[i * stride : i * stride + value_size] for i in range(ncpu)]


def percpu_array_read(map_fd: int, count: int, value_size: int, chunk: int = 8192) -> bytes:
    """Indices 0..count-1 of a per-CPU array map in a few bpf() calls (BPF_MAP_LOOKUP_BATCH).

    The result holds, per index, one value per possible CPU, each padded to 8 bytes: the
    layout `percpu_lookup` splits for one key. Reading 100,000 indices one by one costs one
    syscall (and a ctypes round trip) each; in batches it is a memory copy.
    """
    stride = (value_size + 7) & ~7
    per_index = stride * possible_cpus()
    out = C.create_string_buffer(per_index * max(count, 1))
    keys = (C.c_uint32 * min(max(count, 1), chunk))()
    position = C.c_uint32()  # the kernel's cursor: the last index it returned
    done = 0
    while done < count:
        want = C.c_uint32(min(chunk, count - done))
        rc = _map_lookup_batch(
            map_fd,
            C.byref(position) if done else None,  # NULL: start at index 0
            C.byref(position),
            keys,
            C.byref(out, done * per_index),
            C.byref(want),
            None,
        )
        err = C.get_errno() if rc < 0 else 0
        if rc < 0 and err != 2:  # ENOENT: the map ended (want holds what was read)
            raise BpfError(err, f"bpf_map_lookup_batch: {os.strerror(err)}")
        done += want.value
        if rc < 0 or want.value == 0:
            break
    if done < count:
        raise BpfError(22, f"per-CPU array has {done} entries, {count} were asked for")
    return out.raw[: per_index * count]


def percpu_update(map_fd: int, key: bytes, value: bytes | list[bytes]) -> None:
    """Write one key of a per-CPU map: the same value on every CPU, or one value per CPU."""
    values = value if isinstance(value, list) else [value] * possible_cpus()
    stride = (len(values[0]) + 7) & ~7
    padded = b"".join(v.ljust(stride, b"\0") for v in values)
    _check(_map_update(map_fd, _buf(key), _buf(padded), BPF_ANY), "per-CPU map update")


def prog_test_run(
    program_fd: int,
    packet: bytes,
    repeat: int = 1,
    flags: int = 0,
    batch_size: int = 0,
) -> tuple[int, int]:
    """Run an XDP program on `packet` with BPF_PROG_TEST_RUN: (verdict, mean ns per run).

    With flags=BPF_F_TEST_XDP_LIVE_FRAMES the frames really leave through XDP_TX/REDIRECT
    (an in-kernel traffic generator).
    """
    data = _buf(packet)
    opts = _TestRunOpts()
    opts.sz = C.sizeof(opts)
    opts.data_in = C.cast(data, C.c_void_p)
    opts.data_size_in = len(packet)
    opts.repeat = repeat
    opts.flags = flags
    opts.batch_size = batch_size
    _check(_test_run(program_fd, C.byref(opts)), "BPF_PROG_TEST_RUN")
    return int(opts.retval), int(opts.duration)


def xdp_query_id(ifindex: int, flags: int = 0) -> int:
    """Id of the XDP program attached to `ifindex` (0 when none)."""
    prog_id = C.c_uint32(0)
    _check(_xdp_query_id(ifindex, flags, C.byref(prog_id)), "bpf_xdp_query_id")
    return int(prog_id.value)


class BpfObject:
    """An opened and loaded BPF object file; close() (or `with`) unloads what is not pinned.

    pin_dir: maps named in `pin_maps` are pinned there; a map already pinned there is adopted
    when its layout matches and refused with PinnedMapMismatch otherwise.
    rodata: initial bytes of the object's .rodata (its `const volatile` load-time settings).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        pin_dir: str | os.PathLike[str] | None = None,
        pin_maps: tuple[str, ...] = (),
        rodata: bytes | None = None,
    ) -> None:
        self.path = os.fspath(path)
        obj = _open_file(self.path.encode(), None)
        if not obj or _get_error(C.c_void_p(obj)):
            err = C.get_errno()
            raise BpfError(err, f"cannot open BPF object {self.path}: {os.strerror(err)}")
        self._obj: int | None = obj
        self.adopted: list[str] = []
        try:
            maps = self._maps()
            if rodata is not None:
                self._set_rodata(maps, rodata)
            if pin_dir is not None:
                self._prepare_pins(maps, Path(pin_dir), pin_maps)
            _check(_load(obj), f"loading {self.path} into the kernel")
        except BaseException:
            self.close()
            raise

    def _maps(self) -> dict[str, int]:
        out: dict[str, int] = {}
        current = _next_map(self._handle(), None)
        while current:
            out[_map_name(current).decode()] = current
            current = _next_map(self._handle(), current)
        return out

    def _set_rodata(self, maps: Mapping[str, int], rodata: bytes) -> None:
        names = [name for name in maps if name.endswith(".rodata")]
        if len(names) != 1:
            raise ValueError(f"{self.path} has no single .rodata map (found {names})")
        ptr = maps[names[0]]
        if _map_value_size(ptr) != len(rodata):
            raise ValueError(
                f".rodata of {self.path} is {_map_value_size(ptr)} bytes, not {len(rodata)}"
            )
        data = _buf(rodata)
        _check(_map_set_initial_value(ptr, data, len(rodata)), "bpf_map__set_initial_value")

    def _prepare_pins(self, maps: Mapping[str, int], pin_dir: Path, names: tuple[str, ...]) -> None:
        for name in names:
            if name not in maps:
                raise KeyError(f"no map {name!r} in {self.path}")
            ptr = maps[name]
            pin = pin_dir / name
            if pin.exists():
                expected = MapLayout(
                    _map_type(ptr),
                    _map_key_size(ptr),
                    _map_value_size(ptr),
                    _map_max_entries(ptr),
                    _map_flags(ptr),
                )
                fd = obj_get(pin)
                try:
                    found = map_layout(fd)
                finally:
                    os.close(fd)
                diff = found.differences(expected)
                if diff:
                    raise PinnedMapMismatch(
                        22,
                        f"pinned map {pin} does not match this program: {', '.join(diff)}; "
                        f"remove {pin_dir} to start fresh (its rules and counters are lost)",
                    )
                self.adopted.append(name)
            _check(_map_set_pin_path(ptr, str(pin).encode()), f"pin path of {name}")

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

    def map_fds(self) -> dict[str, int]:
        """Every map of the object by name (.rodata included); closed with the object."""
        return {name: self.map_fd(name) for name in self._maps()}

    def close(self) -> None:
        if self._obj is not None:
            _close(self._obj)
            self._obj = None
