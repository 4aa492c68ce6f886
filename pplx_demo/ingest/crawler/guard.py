"""The SSRF guard: which addresses a connection may use (`_AddressPolicy`: private, link-local and
cloud-metadata addresses in every IPv6 disguise) and the httpx transport that resolves once and
dials only a validated address (`_GuardedBackend`, `_GuardedTransport`)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Sequence

import httpcore
import httpx

from pplx_demo.errors import DemoError


class BlockedAddress(DemoError):
    """A connection the SSRF guard refused; the message names the host, the address and why."""


def address_problem(address: str) -> str | None:
    """Why `address` (an IPv4/IPv6 literal) must not be contacted from a public server, or None."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            inner = address_problem(str(ip.ipv4_mapped))
            return f"IPv4-mapped {inner}" if inner else None
        if ip.sixtofour is not None:
            inner = address_problem(str(ip.sixtofour))
            if inner:
                return f"6to4 {inner}"
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local address"
    if ip.is_reserved:
        return "reserved address"
    if ip.is_private:
        return "private address"
    if not ip.is_global:
        return "not globally routable address"
    return None


# Link-local ranges: cloud metadata services (AWS, GCP, Azure, OCI, DigitalOcean, ECS tasks, ...) and
# router / host-internal services answer here. Plus metadata addresses outside them.
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_METADATA = {
    ipaddress.ip_address("fd00:ec2::254"): "AWS metadata (IPv6) address",
    ipaddress.ip_address("100.100.100.200"): "Alibaba Cloud metadata address",
    ipaddress.ip_address("168.63.129.16"): "Azure host services (WireServer) address",
    ipaddress.ip_address("192.0.0.192"): "Oracle Cloud metadata address",
}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_PRIVATE_SETTING = "PPLX_DEMO_ALLOW_PRIVATE"
_LINK_LOCAL_SETTING = "PPLX_DEMO_ALLOW_LINK_LOCAL"


def link_local_problem(address: str) -> str | None:
    """Why `address` is a link-local or cloud-metadata address (also inside IPv4-mapped, IPv4-compatible,
    6to4, NAT64 and Teredo IPv6 forms), or None. Allowing private addresses never opens these."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    for form, candidate in _address_forms(ip):
        if candidate in _METADATA:
            return form + _METADATA[candidate]
        if any(candidate.version == net.version and candidate in net for net in _LINK_LOCAL):
            return form + "link-local address"
    return None


def _address_forms(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[tuple[str, Any]]:
    """The address itself, then every IPv4 address an IPv6 address carries, each with its form's name."""
    forms: list[tuple[str, Any]] = [("", ip)]
    if isinstance(ip, ipaddress.IPv6Address):
        packed = ip.packed
        if ip.ipv4_mapped is not None:
            forms.append(("IPv4-mapped ", ip.ipv4_mapped))
        if packed[:12] == bytes(12) and int(ip) > 1:
            forms.append(("IPv4-compatible ", ipaddress.IPv4Address(packed[12:])))
        if ip.sixtofour is not None:
            forms.append(("6to4 ", ip.sixtofour))
        if ip.teredo is not None:
            forms.append(("Teredo ", ip.teredo[1]))
        if ip in _NAT64:
            forms.append(("NAT64 ", ipaddress.IPv4Address(packed[12:])))
        if ip in _NAT64_LOCAL:  # RFC 6052 /48 layout: the IPv4 address straddles the u-octet
            forms.append(("NAT64 ", ipaddress.IPv4Address(packed[6:8] + packed[9:11])))
    return forms


class _AddressPolicy:
    """Which resolved addresses a connection may use."""

    def __init__(self, allow_private: bool, allow_link_local: bool, allowlist: Sequence[str] = ()) -> None:
        self.allow_private = allow_private
        self.allow_link_local = allow_link_local
        self.allowlist = [ipaddress.ip_network(n, strict=False) for n in allowlist]

    def problem(self, address: str) -> tuple[str, str] | None:
        """(why the address is refused, the setting that would allow it), or None."""
        special = link_local_problem(address)
        if special is not None:
            return None if self.allow_link_local else (special, _LINK_LOCAL_SETTING)
        if self.allow_private:
            return None
        reason = address_problem(address)
        if reason is None:
            return None
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if any(ip.version == net.version and ip in net for net in self.allowlist):
            return None
        return reason, _PRIVATE_SETTING


class _GuardedBackend(httpcore.SyncBackend):
    """httpcore network backend: resolve once, validate every address, connect to a validated one."""

    def __init__(self, policy: _AddressPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve host {host!r} ({exc})") from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for address in addresses:
            refused = self.policy.problem(address)
            if refused:
                reason, setting = refused
                target = f"{host}, a {reason}" if host == address else f"{host}: it resolves to {address}, a {reason}"
                if setting == _LINK_LOCAL_SETTING:
                    raise BlockedAddress(
                        f"refused {target}; link-local and cloud-metadata addresses stay refused when private "
                        "addresses are allowed, unless they are allowed explicitly too",
                        setting=_LINK_LOCAL_SETTING,
                    )
                raise BlockedAddress(
                    f"refused {target}; private and local addresses are refused unless explicitly allowed",
                    setting=_PRIVATE_SETTING,
                    cli_flag="--allow-private",
                )
        last_error: Exception | None = None
        for address in addresses:
            try:
                # Connect to the address just validated, never to the name (no second DNS lookup).
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
            except httpcore.ConnectTimeout as exc:
                last_error = exc
        if last_error is not None:
            raise last_error
        raise httpcore.ConnectError(f"no address for host {host!r}")


class _GuardedTransport(httpx.HTTPTransport):
    """httpx transport whose connection pool dials through `_GuardedBackend` (no proxies)."""

    def __init__(self, policy: _AddressPolicy, max_connections: int) -> None:
        super().__init__(trust_env=False, limits=httpx.Limits(max_connections=max_connections))
        ssl_context = httpx.create_ssl_context(trust_env=False)
        # httpx 0.28 builds its pool in __init__ with the default backend; swap in a guarded one.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            network_backend=_GuardedBackend(policy),
        )
