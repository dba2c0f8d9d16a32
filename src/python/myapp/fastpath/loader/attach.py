"""Attach the XDP program to interfaces through netlink (pyroute2), native or generic mode.

One agent per interface: an abstract unix socket named after the interface (scoped to the
network namespace, released by the kernel when the process dies) marks the owner, so a second
agent is refused while an earlier agent's program is taken over.

No gap on restart: an agent leaves its program attached when it stops (unless told to detach),
and the next one replaces it in one netlink call (XDP_FLAGS_REPLACE with the expected old
program), or keeps it when it is the same program over the same maps. Only a change between
native and generic mode detaches first: the kernel never holds both at once.

The next agent finds the old program through a pin, `<bpffs>/fp_prog_<ifname>/` (the program
as `prog`, beside its own maps: its .rodata), because opening a program or a map by id needs
CAP_SYS_ADMIN, which the deployed agent does not have (CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN
only), while bpf_obj_get needs only access to the pin. A pin counts only when it holds the
program netlink reports as attached.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from myapp.fastpath.loader import libbpf

log = logging.getLogger("myapp.fastpath")
_MODE_FLAGS = {"native": libbpf.XDP_FLAGS_DRV_MODE, "generic": libbpf.XDP_FLAGS_SKB_MODE}


class AttachError(RuntimeError):
    """The program cannot be attached; the message says why and what to do."""


@dataclass
class Attachment:
    ifname: str
    ifindex: int
    mode: str
    prog_id: int
    _lock: socket.socket
    attached: bool = True
    # The program found attached was the same as ours (same tag and maps): left in place.
    kept: bool = False
    # Where the attached program is pinned for the next agent (None: not pinned).
    pin: Path | None = None


def _pin_name(name: str) -> str:
    # bpffs refuses a dot in a name (EPERM: "reserved"); interface and map names may hold one.
    return name.replace(".", "%")


def pin_path(pin_dir: Path, ifname: str) -> Path:
    """The bpffs directory pinning the program attached to `ifname` and its own maps."""
    return pin_dir / f"fp_prog_{_pin_name(ifname)}"


def interface_index(ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise AttachError(
            f"interface {ifname!r} does not exist in this network namespace "
            "(check FASTPATH_INTERFACES)"
        ) from None


def _claim(ifname: str) -> socket.socket:
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        lock.bind(f"\0myapp-fastpath/{ifname}")
    except OSError as err:
        lock.close()
        if err.errno == errno.EADDRINUSE:
            raise AttachError(
                f"another fastpath agent is already attached to {ifname!r}; stop it first "
                "(one agent per interface)"
            ) from None
        raise
    return lock


def _set_xdp(ipr: IPRoute, ifindex: int, fd: int, flags: int, expected_fd: int = -1) -> None:
    # pyroute2's xdp_fd= shortcut cannot carry mode flags: pass the nested IFLA_XDP attributes.
    attrs = [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]
    if expected_fd >= 0:
        attrs.append(("IFLA_XDP_EXPECTED_FD", expected_fd))
    ipr.link("set", index=ifindex, xdp={"attrs": attrs})


def _remove_pin(pin: Path) -> None:
    if not pin.exists():
        return
    for entry in pin.iterdir():
        entry.unlink()
    pin.rmdir()


def _write_pin(pin: Path, program_fd: int, own_maps: Mapping[str, int]) -> Path | None:
    """Pin the attached program and its own maps at `pin` (built aside, then renamed in place).
    A failure is logged, not raised: the program is attached; only the next agent's check of it
    is lost (that agent then replaces the program, still in one step)."""
    staging = pin.with_name(pin.name + "%new")
    try:
        _remove_pin(staging)
        staging.mkdir()
        libbpf.obj_pin(program_fd, staging / "prog")
        for name, fd in own_maps.items():
            libbpf.obj_pin(fd, staging / _pin_name(name))
        _remove_pin(pin)
        staging.rename(pin)
    except OSError as err:
        log.error(
            "cannot pin the attached program at %s (%s): the next agent cannot tell whether it "
            "is unchanged and will replace it",
            pin,
            err,
        )
        return None
    return pin


def _open_pin(pin: Path, attached_id: int) -> tuple[int, list[int]] | None:
    """(program fd, fds of its own maps) from `pin` when it holds the program `attached_id`."""
    if not (pin / "prog").exists():
        log.warning("no pin of the attached program %d at %s", attached_id, pin)
        return None
    fds: list[int] = []
    try:
        fds.append(libbpf.obj_get(pin / "prog"))
        pinned_id = libbpf.prog_id(fds[0])
        if pinned_id == attached_id:
            fds += [libbpf.obj_get(p) for p in sorted(pin.iterdir()) if p.name != "prog"]
            return fds[0], fds[1:]
        log.warning("%s pins program %d, not the attached %d: ignored", pin, pinned_id, attached_id)
    except OSError as err:
        log.error("cannot open the pinned program at %s: %s", pin, err)
    for fd in fds:
        os.close(fd)
    return None


def _replace(ipr: IPRoute, ifname: str, ifindex: int, fd: int, flags: int, expected: int) -> None:
    try:
        if expected >= 0:
            _set_xdp(ipr, ifindex, fd, flags | libbpf.XDP_FLAGS_REPLACE, expected)
        else:
            # Without XDP_FLAGS_UPDATE_IF_NOEXIST the kernel swaps the program in one step as
            # well, only without checking which program it replaces.
            _set_xdp(ipr, ifindex, fd, flags)
    except NetlinkError as err:
        raise AttachError(f"cannot replace the XDP program on {ifname!r}: {err}") from None


def _take_over(
    ipr: IPRoute,
    ifname: str,
    ifindex: int,
    mode: str,
    old_id: int,
    program_fd: int,
    pin: Path | None,
    own_maps: Mapping[str, int],
) -> tuple[int, bool] | None:
    """(program id, kept) after keeping or atomically replacing program `old_id`; None when it
    went away meanwhile."""
    flags = _MODE_FLAGS[mode]
    pinned = _open_pin(pin, old_id) if pin is not None else None
    if pinned is not None:
        old_fd, old_maps = pinned
        try:
            if libbpf.same_program(old_fd, program_fd, [*old_maps, *own_maps.values()]):
                return old_id, True
            _replace(ipr, ifname, ifindex, program_fd, flags, old_fd)
        finally:
            for fd in (old_fd, *old_maps):
                os.close(fd)
        return libbpf.xdp_query_id(ifindex, flags), False
    # No usable pin (left by an agent from before pins, or one that could not pin): by id.
    try:
        old_fd = libbpf.prog_fd_by_id(old_id)
    except libbpf.BpfError as err:
        if err.errno == errno.ENOENT:
            return None
        # EPERM without CAP_SYS_ADMIN: the program is there, only it cannot be opened.
        log.error(
            "%s: cannot open the attached program %d (%s) and it has no pin: replacing it "
            "without checking which program it is (no gap, but an unchanged program is "
            "reloaded instead of kept)",
            ifname,
            old_id,
            err,
        )
        _replace(ipr, ifname, ifindex, program_fd, flags, -1)
    else:
        # Its maps cannot be matched without the pin, so it is not known to be the same.
        try:
            _replace(ipr, ifname, ifindex, program_fd, flags, old_fd)
        finally:
            os.close(old_fd)
    return libbpf.xdp_query_id(ifindex, flags), False


def attach(
    ifname: str,
    program_fd: int,
    mode: str,
    pin_dir: Path | None = None,
    own_maps: Mapping[str, int] | None = None,
) -> Attachment:
    """Attach `program_fd` to `ifname` in `mode` (native, generic, or auto: native else generic),
    taking over (keeping or atomically replacing) a program an earlier agent left in that mode.

    pin_dir: the bpffs directory where the attached program is pinned (`pin_path`) for the next
    agent; own_maps: the program's maps not pinned elsewhere (its .rodata), by name."""
    ifindex = interface_index(ifname)
    lock = _claim(ifname)
    pin = pin_path(pin_dir, ifname) if pin_dir is not None else None
    maps = dict(own_maps or {})
    try:
        with IPRoute() as ipr:
            tried = ["native", "generic"] if mode == "auto" else [mode]
            current = {m: libbpf.xdp_query_id(ifindex, f) for m, f in _MODE_FLAGS.items()}
            for candidate in tried:
                if current[candidate]:
                    found = _take_over(
                        ipr, ifname, ifindex, candidate, current[candidate], program_fd, pin, maps
                    )
                    if found is not None:
                        prog_id, kept = found
                        pinned = pin
                        if pin is not None and not kept:
                            pinned = _write_pin(pin, program_fd, maps)
                        return Attachment(
                            ifname, ifindex, candidate, prog_id, lock, kept=kept, pin=pinned
                        )
            for other, flags in _MODE_FLAGS.items():
                if libbpf.xdp_query_id(ifindex, flags):
                    # Modes cannot coexist, so this change has a gap.
                    log.warning(
                        "%s: a program is attached in %s mode, not %s: detaching it first; "
                        "nothing filters until the new one is attached (a few ms)",
                        ifname,
                        other,
                        " or ".join(tried),
                    )
                    _set_xdp(ipr, ifindex, -1, flags)
            errors = []
            for candidate in tried:
                try:
                    _set_xdp(ipr, ifindex, program_fd, _MODE_FLAGS[candidate])
                except NetlinkError as err:
                    errors.append(f"{candidate}: {err}")
                    continue
                prog_id = libbpf.xdp_query_id(ifindex, _MODE_FLAGS[candidate])
                pinned = _write_pin(pin, program_fd, maps) if pin is not None else None
                return Attachment(ifname, ifindex, candidate, prog_id, lock, pin=pinned)
        raise AttachError(f"cannot attach XDP to {ifname!r}: {'; '.join(errors)}")
    except BaseException:
        lock.close()
        raise


def release(att: Attachment) -> None:
    """Release the interface, leaving the program attached (and pinned) for the next agent."""
    att.attached = False
    att._lock.close()


def detach(att: Attachment) -> None:
    """Remove our program (if it is still the one attached), its pin, and release the
    interface."""
    try:
        if att.attached and libbpf.xdp_query_id(att.ifindex, _MODE_FLAGS[att.mode]) == att.prog_id:
            with IPRoute() as ipr:
                _set_xdp(ipr, att.ifindex, -1, _MODE_FLAGS[att.mode])
    except (OSError, NetlinkError):
        pass  # the interface is gone: so is the program
    finally:
        att.attached = False
        att._lock.close()
    if att.pin is not None:
        # Left in place, the pin would keep the detached program loaded.
        try:
            _remove_pin(att.pin)
        except OSError as err:
            log.error("cannot remove the program pin %s: %s", att.pin, err)


def is_attached(att: Attachment) -> bool:
    try:
        return (
            att.attached and libbpf.xdp_query_id(att.ifindex, _MODE_FLAGS[att.mode]) == att.prog_id
        )
    except OSError:
        return False
