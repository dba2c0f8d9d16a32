"""Attach the XDP program to interfaces through netlink (pyroute2), native or generic mode.

One agent per interface: an abstract unix socket named after the interface (scoped to the
network namespace, released by the kernel when the process dies) marks the owner, so a second
agent is refused while an earlier agent's program is taken over.

No gap on restart: an agent leaves its program attached when it stops (unless told to detach),
and the next one replaces it in one netlink call (XDP_FLAGS_REPLACE with the expected old
program), or keeps it when it is the same program over the same maps. Only a change between
native and generic mode detaches first: the kernel never holds both at once.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from myapp.fastpath.loader import libbpf

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


def _take_over(
    ipr: IPRoute, ifname: str, ifindex: int, mode: str, old_id: int, program_fd: int
) -> tuple[int, bool] | None:
    """(program id, kept) after keeping or atomically replacing program `old_id`; None when it
    went away meanwhile."""
    try:
        old_fd = libbpf.prog_fd_by_id(old_id)
    except libbpf.BpfError:
        return None
    flags = _MODE_FLAGS[mode]
    try:
        if libbpf.same_program(old_fd, program_fd):
            return old_id, True
        try:
            _set_xdp(ipr, ifindex, program_fd, flags | libbpf.XDP_FLAGS_REPLACE, old_fd)
        except NetlinkError as err:
            raise AttachError(f"cannot replace the XDP program on {ifname!r}: {err}") from None
    finally:
        os.close(old_fd)
    return libbpf.xdp_query_id(ifindex, flags), False


def attach(ifname: str, program_fd: int, mode: str) -> Attachment:
    """Attach `program_fd` to `ifname` in `mode` (native, generic, or auto: native else generic),
    taking over (keeping or atomically replacing) a program an earlier agent left in that mode."""
    ifindex = interface_index(ifname)
    lock = _claim(ifname)
    try:
        with IPRoute() as ipr:
            tried = ["native", "generic"] if mode == "auto" else [mode]
            current = {m: libbpf.xdp_query_id(ifindex, f) for m, f in _MODE_FLAGS.items()}
            for candidate in tried:
                if current[candidate]:
                    found = _take_over(
                        ipr, ifname, ifindex, candidate, current[candidate], program_fd
                    )
                    if found is not None:
                        prog_id, kept = found
                        return Attachment(ifname, ifindex, candidate, prog_id, lock, kept=kept)
            # A program in the other mode: modes cannot coexist, so this change has a gap.
            for flags in _MODE_FLAGS.values():
                if libbpf.xdp_query_id(ifindex, flags):
                    _set_xdp(ipr, ifindex, -1, flags)
            errors = []
            for candidate in tried:
                try:
                    _set_xdp(ipr, ifindex, program_fd, _MODE_FLAGS[candidate])
                except NetlinkError as err:
                    errors.append(f"{candidate}: {err}")
                    continue
                prog_id = libbpf.xdp_query_id(ifindex, _MODE_FLAGS[candidate])
                return Attachment(ifname, ifindex, candidate, prog_id, lock)
        raise AttachError(f"cannot attach XDP to {ifname!r}: {'; '.join(errors)}")
    except BaseException:
        lock.close()
        raise


def release(att: Attachment) -> None:
    """Release the interface, leaving the program attached for the next agent to take over."""
    att.attached = False
    att._lock.close()


def detach(att: Attachment) -> None:
    """Remove our program (if it is still the one attached) and release the interface."""
    try:
        if att.attached and libbpf.xdp_query_id(att.ifindex, _MODE_FLAGS[att.mode]) == att.prog_id:
            with IPRoute() as ipr:
                _set_xdp(ipr, att.ifindex, -1, _MODE_FLAGS[att.mode])
    except (OSError, NetlinkError):
        pass  # the interface is gone: so is the program
    finally:
        att.attached = False
        att._lock.close()


def is_attached(att: Attachment) -> bool:
    try:
        return (
            att.attached and libbpf.xdp_query_id(att.ifindex, _MODE_FLAGS[att.mode]) == att.prog_id
        )
    except OSError:
        return False
