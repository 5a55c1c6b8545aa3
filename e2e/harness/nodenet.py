"""The real node's two network services, run by e2e/cluster/cluster.sh beside the kubelet.

The control plane listens on 127.0.0.1 of the machine; the real node, its pods and its Services live in a
private network namespace. One process bridges the two, with sockets made inside the namespace
(``setns`` on the creating thread) and connections made outside it:

- **the apiserver's advertised address**: TCP on the node gateway's address and the apiserver's port,
  inside the namespace, forwarded to 127.0.0.1 outside. The apiserver advertises that address, so the
  ``kubernetes`` Service's endpoint is reachable from the kubelet, kube-proxy and pods;
- **cluster DNS**: UDP port 53 on the same address answers ``<service>.<namespace>.svc.<domain>`` with the
  Service's ClusterIP (a headless Service: its ready endpoints) and ``<hostname>.<subdomain>.<namespace>.svc``
  with the pod's IP, from the API (re-listed at most every 0.2 s on a miss). Names outside the cluster
  domain get NXDOMAIN: the namespace has no way out. The kubelet's ``clusterDNS`` points pods here.

- **the apiserver's way in** (``kubectl logs``, ``exec``, ``port-forward``, the pods and services proxy): an
  HTTP CONNECT proxy on a Unix socket outside, which the apiserver's egress selector uses for its
  ``cluster`` traffic; it dials the node's and its pods' addresses (``--inside``) from inside the
  namespace, and every other address (kwok's, a webhook on 127.0.0.1) from outside, as before.

Tests reach Services the same way: :func:`connect_in_netns` opens a TCP connection from inside, and
:func:`forward_into_netns` gives clients that open their own sockets (gRPC) a local port to use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ipaddress
import json
import os
import socket
import ssl
import struct
import threading
import time
import urllib.request
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_setns_lock = threading.Lock()


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(path: str) -> Iterator[None]:
    """Runs the block's socket creation in the network namespace at PATH (this thread only)."""
    with _setns_lock, open("/proc/thread-self/ns/net") as home, open(path) as target:
        _setns(target.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())


def connect_in_netns(path: str, host: str, port: int, timeout: float = 10.0) -> socket.socket:
    """A TCP connection from inside the namespace at PATH (e.g. to a Service's ClusterIP)."""
    with in_netns(path):
        return socket.create_connection((host, port), timeout=timeout)


@contextlib.contextmanager
def forward_into_netns(path: str, host: str, port: int, local: int = 0, connect_timeout: float = 10.0) -> Iterator[int]:
    """A port on 127.0.0.1 of this machine (LOCAL, or a free one) whose connections go to HOST:PORT
    inside the namespace at PATH (``kubectl port-forward`` for a Service's ClusterIP): for clients that
    open their own sockets, such as gRPC's. Yields the local port; the listener closes when the block ends.
    ``connect_timeout`` bounds the connect only: a reply may take minutes (a model call on CPU)."""
    listener = socket.create_server(("127.0.0.1", local))
    listener.settimeout(0.5)  # the accept loop notices the end of the block
    stop = threading.Event()

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = connect_in_netns(path, host, port, timeout=connect_timeout)
            except OSError:
                client.close()
                continue
            # The connect's timeout would stay on the socket and end the pipe at the first quiet spell
            # that long: a model call that answers after 10 s lost its reply ("Server disconnected").
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


# --------------------------------------------------------------------------
# the apiserver forward
# --------------------------------------------------------------------------
async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _forward(target: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection(*target)
    except OSError:
        writer.close()
        return
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


# --------------------------------------------------------------------------
# the apiserver's egress (HTTP CONNECT)
# --------------------------------------------------------------------------
CONNECT_HEAD_MAX = 8192


Networks = list[ipaddress.IPv4Network | ipaddress.IPv6Network]
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(netns: str, inside: Networks, host: str, port: int) -> Stream:
    """A connection to HOST:PORT, from inside the namespace when HOST is one of its addresses."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    if addr is not None and any(addr in net for net in inside):
        sock = await asyncio.get_running_loop().run_in_executor(None, connect_in_netns, netns, host, port)
        sock.setblocking(False)
        return await asyncio.open_connection(sock=sock)
    return await asyncio.open_connection(host, port)


async def _egress(netns: str, inside: Networks, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One CONNECT request from the apiserver: ``CONNECT host:port HTTP/1.1``, headers, then bytes."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head[: head.index(b"\r\n")].decode("ascii").split(" ", 2)
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or not host or len(head) > CONNECT_HEAD_MAX:
            raise ValueError(target)
        up_reader, up_writer = await _connect(netns, inside, host.strip("[]"), int(port))
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        with contextlib.suppress(OSError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            writer.close()
        return
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


# --------------------------------------------------------------------------
# cluster DNS
# --------------------------------------------------------------------------
class Names:
    """Cluster names to IPv4 addresses, listed from the API."""

    def __init__(self, api: str, ctx: ssl.SSLContext, domain: str) -> None:
        self.api, self.ctx, self.domain = api, ctx, domain.strip(".").lower()
        self.records: dict[str, list[str]] = {}
        self.listed_at = 0.0

    def _get(self, path: str) -> list[dict]:
        with urllib.request.urlopen(self.api + path, context=self.ctx, timeout=5) as resp:
            return json.load(resp)["items"]

    def refresh(self) -> None:
        records: dict[str, list[str]] = {}
        headless: dict[tuple[str, str], list[str]] = {}
        for svc in self._get("/api/v1/services"):
            meta, spec = svc["metadata"], svc.get("spec", {})
            name = f"{meta['name']}.{meta['namespace']}.svc.{self.domain}"
            if spec.get("clusterIP") and spec["clusterIP"] != "None":
                records[name] = [spec["clusterIP"]]
            else:
                headless[(meta["namespace"], meta["name"])] = records.setdefault(name, [])
        for pod in self._get("/api/v1/pods?fieldSelector=status.phase%3DRunning"):
            meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
            ip, sub = status.get("podIP"), spec.get("subdomain")
            if not ip or not sub:
                continue
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
            records[f"{spec.get('hostname', meta['name'])}.{sub}.{meta['namespace']}.svc.{self.domain}"] = [ip]
            if ready and (meta["namespace"], sub) in headless:
                headless[(meta["namespace"], sub)].append(ip)
        self.records, self.listed_at = records, time.monotonic()

    def lookup(self, name: str) -> list[str] | None:
        """Addresses for NAME, [] for a name that exists with none, None for NXDOMAIN."""
        name = name.strip(".").lower()
        if not (name == self.domain or name.endswith("." + self.domain)):
            return None
        if name not in self.records and time.monotonic() - self.listed_at > 0.2:
            with contextlib.suppress(OSError, ValueError, KeyError):
                self.refresh()
        return self.records.get(name)


def _qname(packet: bytes, pos: int) -> tuple[str, int]:
    labels = []
    while True:
        n = packet[pos]
        if n == 0:
            return ".".join(labels), pos + 1
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(packet[pos + 1 : pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n


def answer(packet: bytes, names: Names) -> bytes | None:
    """The reply to one DNS query packet (A records only; other types get an empty answer)."""
    if len(packet) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    try:
        name, end = _qname(packet, 12)
        qtype, _ = struct.unpack("!HH", packet[end : end + 4])
    except (ValueError, IndexError, struct.error):
        return struct.pack("!HHHHHH", qid, 0x8001, 0, 0, 0, 0)  # FORMERR
    question = packet[12 : end + 4]
    addrs = names.lookup(name)
    rcode = 3 if addrs is None else 0
    rrs = b""
    if addrs and qtype in (1, 255):
        for a in addrs:
            rrs += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(a)
    count = len(addrs) if rrs else 0
    return struct.pack("!HHHHHH", qid, 0x8180 | 0x0400 | rcode, 1, count, 0, 0) + question + rrs


class _DNS(asyncio.DatagramProtocol):
    def __init__(self, names: Names) -> None:
        self.names = names

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = answer(data, self.names)
        if reply is not None:
            self.transport.sendto(reply, addr)  # type: ignore[attr-defined]


async def serve(args: argparse.Namespace) -> None:
    with in_netns(args.netns):
        tcp = socket.create_server((args.address, args.apiserver_port), reuse_port=False)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((args.address, 53))
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    names = Names(f"https://127.0.0.1:{args.apiserver_port}", ctx, args.domain)
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: _DNS(names), sock=udp)
    server = await asyncio.start_server(lambda r, w: _forward(("127.0.0.1", args.apiserver_port), r, w), sock=tcp)
    if args.egress_socket:
        inside = [ipaddress.ip_network(n, strict=False) for n in args.inside.split(",") if n]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.egress_socket)
        await asyncio.start_unix_server(lambda r, w: _egress(args.netns, inside, r, w), path=args.egress_socket)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--netns", required=True, help="path of the node's network namespace (/var/run/netns/NAME)")
    p.add_argument("--address", required=True, help="the node gateway's address inside the namespace")
    p.add_argument("--apiserver-port", type=int, required=True, help="the apiserver's port on 127.0.0.1")
    p.add_argument("--domain", default="cluster.local", help="the cluster DNS domain")
    p.add_argument("--ca", required=True, help="the cluster CA (to list Services and pods)")
    p.add_argument("--cert", required=True, help="a client certificate allowed to list Services and pods")
    p.add_argument("--key", required=True, help="its key")
    p.add_argument("--egress-socket", help="Unix socket of the HTTP CONNECT proxy the apiserver's egress selector uses")
    p.add_argument("--inside", default="", help="comma-separated CIDRs the proxy dials inside the namespace")
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
