from __future__ import annotations

import ipaddress

import pytest
import requests

from myapp.connector.conftest import Receiver
from myapp.connector.egress import AddressGuard, BlockedDestination, guarded_session

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "fd12:3456::1",
        "169.254.1.1",
        "fe80::1",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address under test
        "::",
        "224.0.0.1",
        "ff02::1",
        "169.254.169.254",
        "fd00:ec2::254",
        "100.100.100.200",
        "::ffff:127.0.0.1",  # IPv4-mapped: the socket would reach 127.0.0.1
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "192.0.2.1",  # documentation: not globally reachable either
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    guard = AddressGuard(resolver=lambda host, port: [address])
    with pytest.raises(BlockedDestination, match="CONNECTOR_ALLOWED_NETWORKS"):
        guard.check("hooks.example", 443)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    guard = AddressGuard(resolver=lambda host, port: [address])
    assert guard.check("hooks.example", 443) == [address]


def test_one_private_address_among_public_ones_refuses_the_host() -> None:
    guard = AddressGuard(resolver=lambda host, port: ["93.184.215.14", "10.0.0.7"])
    with pytest.raises(BlockedDestination, match=r"10\.0\.0\.7 \(private\)"):
        guard.check("hooks.example", 443)


def test_the_allow_list_admits_its_networks_only() -> None:
    allowed = (ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd00:ec2::/32"))
    guard = AddressGuard(allowed, resolver=lambda host, port: [host])
    assert guard.check("10.20.3.4", 80) == ["10.20.3.4"]
    assert guard.check("::ffff:10.20.3.4", 80) == ["::ffff:10.20.3.4"]  # unwrapped, then allowed
    assert guard.check("fd00:ec2::254", 80) == ["fd00:ec2::254"]
    with pytest.raises(BlockedDestination):
        guard.check("10.21.0.1", 80)


def _post(guard: AddressGuard, url: str) -> requests.Response:
    with guarded_session(guard) as session:
        return session.post(url, data=b"{}", timeout=5, allow_redirects=False)


def test_a_loopback_receiver_is_refused_without_the_allow_list(receiver: Receiver) -> None:
    with pytest.raises(BlockedDestination, match=r"127\.0\.0\.1 \(loopback\)"):
        _post(AddressGuard(), receiver.url)
    with pytest.raises(BlockedDestination, match="loopback"):
        _post(AddressGuard(), receiver.url.replace("127.0.0.1", "localhost"))
    assert receiver.requests.empty()


def test_a_loopback_receiver_is_reached_with_the_allow_list(receiver: Receiver) -> None:
    assert _post(AddressGuard(LOOPBACK), receiver.url).status_code == 200
    assert receiver.next().path == "/hook"


def test_the_checked_address_is_the_one_connected_to_and_the_host_header_is_kept(
    receiver: Receiver,
) -> None:
    # A rebinding name: each lookup may answer differently; the guard looks it up once per
    # connection and connects to exactly what it checked.
    answers = iter([["10.9.9.9"], ["127.0.0.1"]])
    guard = AddressGuard(LOOPBACK, resolver=lambda host, port: next(answers))
    url = receiver.url.replace("127.0.0.1", "rebind.test")
    with pytest.raises(BlockedDestination, match="10.9.9.9"):
        _post(guard, url)
    assert _post(guard, url).status_code == 200
    got = receiver.next()
    assert got.headers["Host"] == url.split("/")[2]  # rebind.test:<port>, not the address
    assert receiver.requests.empty()


def test_environment_proxies_are_ignored(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Through a proxy the guard would vet the proxy's address, not the webhook's.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    assert _post(AddressGuard(LOOPBACK), receiver.url).status_code == 200


def test_an_unresolvable_name_is_a_connection_error() -> None:
    with pytest.raises(requests.ConnectionError):
        _post(AddressGuard(), "http://no-such-host.invalid/hook")
