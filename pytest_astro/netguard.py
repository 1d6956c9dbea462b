"""The network guard: a DAG file that connects out (or looks up a host name) while being imported
fails.

Installed in the parse sandbox before anything of the project is imported (``install``), like the
metadata-database guard. It is a Python audit hook (PEP 578): it sees every socket ``connect``,
``sendto``/``sendmsg`` and host-name lookup that Python code makes, whichever library makes it
(``requests``, ``boto3``, ``urllib``, a hand-made socket), and raises ``NetworkAccess`` inside that
call, before anything leaves the machine. Loopback, Unix sockets and what ``allow_network`` lists
are let through. A C library with its own sockets (libpq in ``psycopg2``, gRPC's core) is not
seen: it goes out, or blocks until the timeout.

``NetworkAccess`` is a ``BaseException``, so that a client library's ``except Exception`` retry
loop does not turn it into its own error (or swallow it). A file that swallows it anyway still
fails: the first refused attempt is raised again, with the user's traceback, when the DAG file's
module has finished executing.

Allow-list entries (``[tool.pytest-astro] allow_network``): ``host``, ``host:port``, globs in the
host (``*.internal``, ``*:5432``), IP networks (``10.1.0.0/16``, ``10.1.0.0/16:5432``),
``[v6]:port``, and ``*`` for everything (the guard off). Nothing here imports Airflow.
"""

from __future__ import annotations

import fnmatch
import importlib.machinery
import ipaddress
import re
import socket
import sys
import threading
import types
from dataclasses import dataclass

HINT = ("Airflow's DAG processor imports DAG files every few minutes, and a network call at "
        "import time slows it down, or hangs it when the service is slow: make the call in a task "
        "(or in a function a task calls), or use a Jinja template, a variable or a connection")


class NetworkAccess(BaseException):
    """Raised inside a socket call that would have reached another machine while a DAG file is
    parsed."""

    def __init__(self, target: str, lookup: str = "") -> None:
        self.target = target  # "host:port", or "host" for a lookup without a port
        self.lookup = lookup  # the host name looked up, when the attempt was a DNS lookup
        self.stack: types.TracebackType | None = None  # where it was made, for a re-raise
        what = f"looks up {target}" if lookup and ":" not in target else f"connects to {target}"
        super().__init__(f"{what} while being imported; move it into a task")

    @property
    def hint(self) -> str:
        stopped = f" (it was stopped at the DNS lookup of {self.lookup!r})" if self.lookup else ""
        return (f"{HINT}{stopped}. If the file must reach it while being imported, allow it in "
                f"pyproject.toml: [tool.pytest-astro] allow_network = [\"{self.target}\"]")


class AllowListError(ValueError):
    """An ``allow_network`` entry that cannot be read; the message says what to write."""


@dataclass(frozen=True)
class _Rule:
    host: str  # a lower-case glob, or "" when ``network`` is set
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    port: int | None  # None: any port

    def matches(self, host: str, port: int | None) -> bool:
        if self.port is not None and port is not None and port != self.port:
            return False
        if self.network is not None:
            ip = _ip(host)
            return ip is not None and ip.version == self.network.version and ip in self.network
        return fnmatch.fnmatchcase(host.lower().rstrip("."), self.host)


def parse_allow_list(entries, source: str = "allow_network") -> tuple[_Rule, ...]:
    """``allow_network`` entries as rules; ``AllowListError`` naming ``source`` for a bad one."""
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
        raise AllowListError(f"{source}: expected a list of \"host\", \"host:port\", \"*.domain\" "
                             f"or \"10.0.0.0/8\" entries, got {entries!r}")
    return tuple(_parse_entry(entry, source) for entry in entries)


def _parse_entry(entry, source: str) -> _Rule:
    if not isinstance(entry, str) or not entry.strip():
        raise AllowListError(f"{source}: {entry!r} is not a host; write e.g. "
                             "\"api.example.com:443\", \"*.internal\" or \"10.0.0.0/8\"")
    text = entry.strip()
    port: int | None = None
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+|\*))?",
                     text) or re.fullmatch(r"([^:]+|\*)(?::(\d+|\*))?", text)
    if m:
        host, port_text = m.group(1), m.group(2)
        port = int(port_text) if port_text and port_text != "*" else None
    else:
        host = text  # a bare IPv6 address or network, no port
    if port is not None and not 0 < port < 65536:
        raise AllowListError(f"{source}: {entry!r}: port {port} is not a port number (1-65535)")
    bad = AllowListError(f"{source}: {entry!r} is not a host name, address, glob or IP network; "
                         "write e.g. \"api.example.com:443\", \"*.internal\" or "
                         "\"10.0.0.0/8:5432\"")
    if "/" in host:
        try:
            return _Rule("", ipaddress.ip_network(host, strict=False), port)
        except ValueError:
            raise bad from None
    if not re.fullmatch(r"[A-Za-z0-9_.*?\-:\[\]]+", host):
        raise bad
    return _Rule(host.lower().rstrip("."), None, port)


def _ip(host: str):
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _target(host: str, port) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port not in (None, 0, "") else host


class _Guard:
    """The audit hook's state: rules, the addresses allowed names resolved to, refused attempts."""

    def __init__(self, rules: tuple[_Rule, ...]) -> None:
        self.rules = rules
        self.resolved: set[tuple[str, int | None]] = set()  # (ip, port or None) from allowed names
        self.local_names = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback",
                            ""}
        try:
            self.local_names.add(socket.gethostname().lower())
        except OSError:
            pass
        self.refused: list[NetworkAccess] = []  # since the outermost module execution began
        self.state = threading.local()

    # ------------------------------------------------------------------ what is local or allowed

    def _is_local(self, host: str) -> bool:
        ip = _ip(host)
        if ip is not None:
            if getattr(ip, "ipv4_mapped", None) is not None:
                ip = ip.ipv4_mapped
            return ip.is_loopback or ip.is_unspecified
        name = host.lower().rstrip(".")
        return name in self.local_names or name.endswith(".localhost")

    def _allowed(self, host: str, port: int | None) -> bool:
        if any(rule.matches(host, port) for rule in self.rules):
            return True
        return (host, port) in self.resolved or (host, None) in self.resolved

    def _remember(self, host: str, port: int | None) -> None:
        """The addresses an allowed name resolves to are allowed too (the connect sees only
        them)."""
        self.state.resolving = True
        try:
            for *_, sockaddr in socket.getaddrinfo(host, port or None):
                self.resolved.add((str(sockaddr[0]), port))
        except (OSError, UnicodeError):
            pass  # the caller's own lookup fails the same way
        finally:
            self.state.resolving = False

    # ------------------------------------------------------------------ the hook

    def audit(self, event: str, args: tuple) -> None:
        if not event.startswith("socket.") or getattr(self.state, "resolving", False):
            return
        if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
            address = args[1] if len(args) > 1 else None
            if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[0], str):
                self._check(address[0], address[1] if isinstance(address[1], int) else None, False)
        elif event == "socket.getaddrinfo":
            host, port = args[0], args[1]
            if isinstance(host, bytes):
                host = host.decode(errors="replace")
            # a numeric address is checked at connect
            if isinstance(host, str) and _ip(host) is None:
                port = int(port) if isinstance(port,
                                               int) or (isinstance(port, str)
                                                        and port.isdigit()) else None
                self._check(host, port, True)
        elif event in ("socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
            host = args[0] if args else None
            if isinstance(host, str) and (event == "socket.gethostbyaddr" or _ip(host) is None):
                self._check(host, None, True)

    def _check(self, host: str, port: int | None, lookup: bool) -> None:
        if self._is_local(host):
            return
        if self._allowed(host, port):
            if _ip(host) is None:
                self._remember(host, port)
            return
        refused = NetworkAccess(_target(host, port), host if lookup else "")
        refused.stack = _stack_traceback(sys._getframe(2))
        self.refused.append(refused)
        raise refused

    # ------------------------------------------------------------------ swallowed attempts

    def wrap_exec_module(self) -> None:
        """Re-raise a refused attempt that the module's code caught, when its outermost module (the
        DAG file, under the DagBag) has finished executing."""
        real = importlib.machinery.SourceFileLoader.exec_module
        guard = self

        def exec_module(loader, module):
            depth = getattr(guard.state, "depth", 0)
            if depth == 0:
                guard.refused.clear()
            guard.state.depth = depth + 1
            try:
                real(loader, module)
            finally:
                guard.state.depth = depth
            if depth == 0 and guard.refused:
                first = guard.refused[0]
                guard.refused.clear()
                raise first.with_traceback(first.stack)

        importlib.machinery.SourceFileLoader.exec_module = exec_module


def _stack_traceback(frame) -> types.TracebackType | None:
    """A traceback of the calling stack (outermost first), so that a re-raised attempt still names
    the line of the DAG file that made it."""
    tb = None
    while frame is not None:
        tb = types.TracebackType(tb, frame, frame.f_lasti, frame.f_lineno)
        frame = frame.f_back
    return tb


_installed: _Guard | None = None


def install(allow: list[str] | tuple[str, ...] = ()) -> None:
    """Refuse outbound connections and lookups in this process from now on (idempotent; for the
    parse sandbox: an audit hook cannot be removed). ``allow``: ``allow_network`` entries."""
    global _installed
    if _installed is not None:
        return
    rules = parse_allow_list(list(allow))
    if any(rule.host == "*" and rule.port is None for rule in rules):
        return  # allow_network = ["*"]: the guard is off
    guard = _Guard(rules)
    sys.addaudithook(guard.audit)
    guard.wrap_exec_module()
    _installed = guard


def find_in_chain(exc: BaseException | None) -> NetworkAccess | None:
    """The guard's exception anywhere in ``exc``'s cause/context chain."""
    from pytest_astro import dbguard

    return dbguard.find_in_chain(exc, NetworkAccess)
