"""A fast path with traffic to look at, on this machine (root): `make demo-fastpath`.

Creates a veth pair (the receiving end here, the sending end in a network namespace of its own),
runs the real agent attached to the receiving end (maps pinned under a throw-away bpffs
directory, gRPC control on 127.0.0.1) and sends a steady UDP stream from two sender addresses
with the kernel's packet generator. Point the API at it (`FASTPATH_ADDR`), add a rule for one of
the sources, and the WebUI shows its packet rate; the WebUI's end-to-end suite does exactly that.

When ready it prints one JSON line: ``{"grpc": "127.0.0.1:PORT", "interface": ...,
"sources": ["198.18.x.2/32", ...], "pps": N}``; it runs until SIGTERM or SIGINT, then removes
everything it made. ``DEMO_PPS`` sets the packet rate per source (default 1000).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import threading
import uuid
from pathlib import Path

from myapp.fastpath import packets
from myapp.fastpath.agent import Agent, PrivilegeError
from myapp.fastpath.config import Config
from myapp.fastpath.control.server import build_server
from myapp.fastpath.control.service import FastPathService
from myapp.fastpath.netlab import Generator, VethLab

TICK_SECONDS = 0.1  # the stream is sent in small bursts, ten a second


def run(stopping: threading.Event, pps: int) -> None:
    """Set up, announce, send until `stopping` is set, tear down."""
    bpffs = Path(f"/sys/fs/bpf/myapp-demo-{uuid.uuid4().hex[:8]}")
    with VethLab(receiver_netns=False) as lab:
        config = Config(
            interfaces=(lab.rx_if,),
            bpffs=bpffs,
            grpc_port=0,
            http_port=0,
            bind="127.0.0.1",
        )
        agent = Agent.start(config)
        generator: Generator | None = None
        control = None
        try:
            control = build_server(config, [FastPathService(agent, stopping)])
            generator = Generator(lab)
            sources = lab.tx_addrs[:2]
            frames = [
                packets.packet(
                    source, lab.rx_addr, dport=9, src_mac=lab.mac("tx"), dst_mac=lab.mac("rx")
                )
                for source in sources
            ]
            print(
                json.dumps(
                    {
                        "grpc": f"127.0.0.1:{control.port}",
                        "interface": lab.rx_if,
                        "sources": [f"{source}/32" for source in sources],
                        "pps": pps,
                    }
                ),
                flush=True,
            )
            burst = max(1, round(pps * TICK_SECONDS))
            while not stopping.wait(TICK_SECONDS):
                for source, frame in zip(sources, frames, strict=True):
                    generator.send(frame, burst, base_src=source)
        finally:
            if control is not None:
                control.stop(grace=1)
            if generator is not None:
                generator.close()
            agent.close()
            shutil.rmtree(bpffs, ignore_errors=True)  # the pins: nothing else holds the maps


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    pps = int(os.environ.get("DEMO_PPS", "1000"))
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        run(stopping, pps)
    except PrivilegeError as err:
        print(f"demo-fastpath: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
