"""Attach the XDP program to interfaces through netlink (pyroute2), native or generic mode.

One agent per interface: an abstract unix socket named after the interface (scoped to the
network namespace, released by the kernel when the process dies) marks the owner, so a second
agent is refused while a crashed agent's leftover program is simply replaced.
"""

from __future__ import annotations

import errno
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


def _set_xdp(ipr: IPRoute, ifindex: int, fd: int, flags: int) -> None:
    # pyroute2's xdp_fd= shortcut cannot carry mode flags: pass the nested IFLA_XDP attributes.
    ipr.link("set", index=ifindex, xdp={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]})


def attach(ifname: str, program_fd: int, mode: str) -> Attachment:
    """Attach `program_fd` to `ifname` in `mode` (native, generic, or auto: native else generic)."""
    ifindex = interface_index(ifname)
    lock = _claim(ifname)
    try:
        with IPRoute() as ipr:
            # Left by an agent that died without detaching: ours to replace. Mixed modes cannot
            # coexist, so clear both first.
            for flags in _MODE_FLAGS.values():
                if libbpf.xdp_query_id(ifindex, flags):
                    _set_xdp(ipr, ifindex, -1, flags)
            tried = ["native", "generic"] if mode == "auto" else [mode]
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
