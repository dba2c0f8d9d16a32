from __future__ import annotations

import json
import logging
import os
import re

from myapp.common.logs import JsonFormatter, new_request_id


def test_request_ids_are_unique_32_hex_digits() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)


def test_a_forked_worker_draws_its_own_request_id_prefix() -> None:
    parent = new_request_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave without running pytest's teardown
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f]{32}", child)
    assert child[:16] != parent[:16]


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("myapp.test", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    record.request_id = "r-1"
    record.status = 200
    return record


def test_json_lines_carry_utc_millisecond_timestamps_across_seconds() -> None:
    formatter = JsonFormatter()
    first = json.loads(formatter.format(_record(1_800_000_000.25)))
    same_second = json.loads(formatter.format(_record(1_800_000_000.75)))
    next_second = json.loads(formatter.format(_record(1_800_000_001.5)))
    assert first["ts"] == "2027-01-15T08:00:00.250Z"
    assert same_second["ts"] == "2027-01-15T08:00:00.750Z"
    assert next_second["ts"] == "2027-01-15T08:00:01.500Z"
    assert first["msg"] == "hello you"
    assert first["request_id"] == "r-1"
    assert first["status"] == 200
