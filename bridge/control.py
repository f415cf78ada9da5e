"""The control socket: Suricata's unix-command protocol, so `suricatasc` and the
tools built for it work against a running bridge, and the `ipsbridge reload` and
`ipsbridge stats` commands that are its clients.

Protocol (as Suricata 7 speaks it; checked with suricatasc 7.0.10 against both):
a stream socket; the client first sends {"version": "0.2"} (no newline), the
server answers {"return": "OK"} (NOK, and the connection closes, on another
major version); then each command is one JSON object {"command": NAME,
"arguments": {...}} and each answer one JSON object {"return": "OK"|"NOK",
"message": ...}, every answer ending with a newline.

Commands (what they return is Suricata's shape where Suricata has the command):
    command-list, help         {"count": n, "commands": [...]}
    version                    "ipsbridge 0.1.0"
    uptime                     seconds since start (int)
    running-mode               "workers"
    capture-mode               "AF_PACKET_DEV"
    iface-list                 {"count": n, "ifaces": [...]}
    iface-stat {iface}         {"pkts", "drop", "invalid-checksums", "bypassed"} (NOK "Iface does not exist")
    dump-counters              every counter: uptime, per interface, per worker, inspector
    reload-rules, ruleset-reload-rules
                               reload the rules; the answer comes when every worker runs
                               them ("done"), or NOK with why (the old rules keep running)
    ruleset-reload-nonblocking start a reload, answer at once ("done")
    ruleset-reload-time        [{"id": 0, "last_reload": ISO time}]
    ruleset-stats              [{"id": 0, "rules_loaded": n, "rules_failed": n}]
    ruleset-failed-rules       the rules the last load could not load, one line each
    reopen-log-files           as SIGHUP: the EVE file is reopened
    shutdown                   stop the bridge as SIGTERM does

The server is sans-threads: `ControlServer` exposes file objects for the
supervisor's wait loop and handles whatever is readable (`handle_ready`); a
command whose answer must wait (a blocking reload) gets a `Pending` reply that the
supervisor completes later.  Each client connection is bounded (64 KiB of
unanswered input, 16 connections); a client that sends garbage gets NOK and is
dropped, never an exception in the supervisor.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import stat
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

PROTOCOL_VERSION = "0.2"
DEFAULT_SOCKET = "/run/ipsbridge/ipsbridge.socket"
MAX_CLIENTS = 16
MAX_INPUT = 64 * 1024
CLIENT_TIMEOUT = 120.0        # s the client waits for an answer (a reload with a large rule set takes seconds)

_decoder = json.JSONDecoder()


class ControlError(Exception):
    """The socket cannot be set up or reached; the message says which path and why."""


@dataclass
class Pending:
    """A command whose answer comes later: the supervisor calls `server.answer(pending, ok, message)`."""
    client: Any
    command: str


@dataclass(eq=False)        # compared and hashed by identity: the wait loop keeps them in sets and dicts
class _Client:
    sock: socket.socket
    buf: bytes = b""
    greeted: bool = False
    waiting: int = 0              # answers still owed (pending commands)
    closed: bool = False

    def fileno(self) -> int:
        return self.sock.fileno()


@dataclass
class ControlServer:
    """The listening socket and its clients.  `handlers`: command name -> fn(arguments)
    returning (ok, message), or a `Pending` marker factory via `pending_commands`."""
    path: str
    handlers: dict[str, Callable[[dict], tuple[bool, Any]]]
    pending_commands: dict[str, Callable[[Pending, dict], None]] = field(default_factory=dict)
    sock: socket.socket | None = None
    clients: list[_Client] = field(default_factory=list)

    # ------------------------------------------------------------------ set-up
    def open(self) -> None:
        """Bind the socket (mode 0600).  A socket file left by a process that is gone is
        replaced; one another live process answers on is refused."""
        d = os.path.dirname(self.path) or "."
        try:
            os.makedirs(d, mode=0o750, exist_ok=True)
        except OSError as e:
            raise ControlError(f"unix-command: cannot create {d}: {e.strerror}") from e
        if os.path.lexists(self.path):
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise ControlError(f"unix-command: {self.path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(0.5)
            try:
                probe.connect(self.path)
            except OSError:
                os.unlink(self.path)           # stale: nobody listens
            else:
                raise ControlError(f"unix-command: {self.path} is in use by a running process "
                                   f"(another ipsbridge?); stop it or set unix-command.filename")
            finally:
                probe.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            s.bind(self.path)
        except OSError as e:
            s.close()
            raise ControlError(f"unix-command: cannot bind {self.path}: {e.strerror}") from e
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        s.listen(8)
        s.setblocking(False)
        self.sock = s

    def close(self) -> None:
        for c in self.clients:
            c.sock.close()
        self.clients.clear()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def waitables(self) -> list:
        if self.sock is None:
            return []
        return [self.sock] + [c for c in self.clients if not c.closed]

    # ------------------------------------------------------------------ I/O
    def handle_ready(self, objs) -> None:
        """Accept and read whatever of ours `objs` (from the wait) holds."""
        for obj in objs:
            if obj is self.sock:
                self._accept()
            elif isinstance(obj, _Client) and obj in self.clients:
                self._read(obj)
        self.clients = [c for c in self.clients if not c.closed]

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if len(self.clients) >= MAX_CLIENTS:
            conn.close()
            return
        conn.setblocking(False)
        self.clients.append(_Client(conn))

    def _read(self, c: _Client) -> None:
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(c)
            return
        c.buf += data
        if len(c.buf) > MAX_INPUT:
            self._send(c, {"return": "NOK", "message": "command too long"})
            self._drop(c)
            return
        while c.buf and not c.closed:
            text = c.buf.decode("utf-8", "replace").lstrip()
            if not text:
                c.buf = b""
                return
            try:
                obj, end = _decoder.raw_decode(text)
            except json.JSONDecodeError:
                if len(text) < 2 or not text.rstrip().endswith(("}", "\n")):
                    return                     # incomplete: wait for more
                self._send(c, {"return": "NOK", "message": "invalid JSON"})
                self._drop(c)
                return
            c.buf = text[end:].encode()
            self._message(c, obj)

    def _message(self, c: _Client, obj) -> None:
        if not isinstance(obj, dict):
            self._send(c, {"return": "NOK", "message": "expected a JSON object"})
            self._drop(c)
            return
        if not c.greeted:
            version = str(obj.get("version", ""))
            if version.split(".")[0] != PROTOCOL_VERSION.split(".")[0]:
                self._send(c, {"return": "NOK", "message": f"unsupported protocol version {version!r}"})
                self._drop(c)
                return
            c.greeted = True
            self._send(c, {"return": "OK"})
            return
        name = obj.get("command")
        args = obj.get("arguments") or {}
        if not isinstance(name, str) or not isinstance(args, dict):
            self._send(c, {"return": "NOK", "message": "expected {\"command\": NAME, \"arguments\": {...}}"})
            return
        if name in self.pending_commands:
            c.waiting += 1
            self.pending_commands[name](Pending(c, name), args)
            return
        fn = self.handlers.get(name)
        if fn is None:
            self._send(c, {"return": "NOK", "message": f"Unknown command {name!r}"})
            return
        try:
            ok, message = fn(args)
        except Exception as e:  # noqa: BLE001 - a command's failure is the client's answer, never the bridge's end
            ok, message = False, f"{name} failed: {e!r}"
        self._send(c, {"return": "OK" if ok else "NOK", "message": message})

    def answer(self, pending: Pending, ok: bool, message: Any) -> None:
        c = pending.client
        c.waiting = max(0, c.waiting - 1)
        if not c.closed:
            self._send(c, {"return": "OK" if ok else "NOK", "message": message})

    def commands(self) -> list[str]:
        return sorted(set(self.handlers) | set(self.pending_commands))

    def _send(self, c: _Client, obj: dict) -> None:
        data = (json.dumps(obj, default=str) + "\n").encode()
        try:
            c.sock.setblocking(True)
            c.sock.settimeout(2.0)
            c.sock.sendall(data)
        except OSError:
            self._drop(c)
        finally:
            if not c.closed:
                c.sock.setblocking(False)

    def _drop(self, c: _Client) -> None:
        if not c.closed:
            c.closed = True
            c.sock.close()


# ---------------------------------------------------------------------- client
class ControlClient:
    """One connection to a running bridge's control socket."""

    def __init__(self, path: str, timeout: float = CLIENT_TIMEOUT) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.buf = b""
        try:
            self.sock.connect(path)
        except FileNotFoundError as e:
            self.sock.close()
            raise ControlError(f"{path}: no such socket (is the bridge running with unix-command enabled? "
                               f"give its socket with --unix-socket PATH)") from e
        except OSError as e:
            self.sock.close()
            raise ControlError(f"{path}: cannot connect: {e.strerror or e}") from e
        self.sock.sendall(json.dumps({"version": PROTOCOL_VERSION}).encode())
        reply = self._recv()
        if reply.get("return") != "OK":
            raise ControlError(f"{path}: the server refused the protocol: {reply.get('message')}")

    def command(self, name: str, arguments: dict | None = None) -> tuple[bool, Any]:
        msg: dict = {"command": name}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall((json.dumps(msg) + "\n").encode())
        reply = self._recv()
        return reply.get("return") == "OK", reply.get("message")

    def _recv(self) -> dict:
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(65536)
            except socket.timeout as e:
                raise ControlError(f"{self.path}: no answer within {self.sock.gettimeout():.0f} s") from e
            if not data:
                raise ControlError(f"{self.path}: the bridge closed the connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise ControlError(f"{self.path}: not a JSON answer: {line[:80]!r}") from e
        if not isinstance(obj, dict):
            raise ControlError(f"{self.path}: not a JSON object: {line[:80]!r}")
        return obj

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------------- CLI
RELOAD_EPILOG = """\
The running bridge re-reads its configuration file's rule settings (rule-files,
default-rule-path, vars, classification-file, threshold-file) and those files and
checks them; then each worker builds the new engine in a thread and swaps it in
between two ring drains: traffic keeps flowing and flows keep their state.  A rule file with an invalid rule fails the
whole reload and the running rules stay (the message names file and line).
Same as 'kill -USR2 <ipsbridge pid>' or suricatasc's reload-rules.

exit status: 0 reloaded; 1 the reload failed (the old rules keep running);
2 the bridge cannot be reached.
"""

STATS_EPILOG = """\
Live counters of the running bridge, per interface and worker: received,
forwarded, dropped by reason, kernel drops (PACKET_STATISTICS), alerts and
the rules that hit most.  --json prints suricatasc's dump-counters answer.

exit status: 0 printed; 2 the bridge cannot be reached.
"""


def _socket_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unix-socket", metavar="PATH", default=None,
                   help=f"the bridge's control socket (default: {DEFAULT_SOCKET}, or the "
                   f"unix-command.filename of -c FILE)")
    p.add_argument("-c", "--config", metavar="FILE", help="take the socket path from this configuration")


def register(subparsers) -> None:
    r = subparsers.add_parser("reload", help="reload the rules of the running bridge",
                              description="Reload the rules of a running bridge through its control socket.",
                              epilog=RELOAD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _socket_option(r)
    r.set_defaults(func=cmd_reload)
    s = subparsers.add_parser("stats", help="live counters of the running bridge",
                              description="Print the live counters of a running bridge.",
                              epilog=STATS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _socket_option(s)
    s.add_argument("--json", action="store_true", help="print the counters as JSON")
    s.add_argument("--top", type=int, default=10, metavar="N", help="rules shown by hits (default: 10)")
    s.set_defaults(func=cmd_stats)


def socket_path(args) -> str:
    if args.unix_socket:
        return args.unix_socket
    if args.config:
        import conf

        try:
            config = conf.load_file(args.config)
        except conf.ConfigError as exc:
            for p in exc.problems:
                print(f"error: {p}", file=sys.stderr)
            raise SystemExit(2) from exc
        return config.unix_command_path
    return DEFAULT_SOCKET


def cmd_reload(args) -> int:
    try:
        client = ControlClient(socket_path(args))
        ok, message = client.command("reload-rules")
        client.close()
    except ControlError as e:
        print(f"ipsbridge reload: {e}", file=sys.stderr)
        return 2
    if ok:
        print(f"reloaded: {message}" if message != "done" else "reloaded")
        return 0
    print(f"reload failed, the running rules stay: {message}", file=sys.stderr)
    return 1


def cmd_stats(args) -> int:
    try:
        client = ControlClient(socket_path(args), timeout=10.0)
        ok, message = client.command("dump-counters")
        client.close()
    except ControlError as e:
        print(f"ipsbridge stats: {e}", file=sys.stderr)
        return 2
    if not ok:
        print(f"ipsbridge stats: {message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(message, indent=2, sort_keys=True))
    else:
        print(format_stats(message, args.top))
    return 0


STAT_COLUMNS = (("received", "received"), ("forwarded", "forwarded"), ("dropped", "dropped"),
                ("kernel_drops", "kernel drops"), ("bypassed", "bypassed"))


def format_stats(d: dict, top: int = 10) -> str:
    """dump-counters as tables: interfaces, workers, inspector, top rules."""
    out = [f"uptime: {d.get('uptime', 0)} s"]
    rows = []
    for name, c in sorted(d.get("interfaces", {}).items()):
        dropped = c.get("dropped", {})
        total = sum(dropped.values()) if isinstance(dropped, dict) else int(dropped or 0)
        rows.append([name, c.get("mode", "")] + [str(c.get(k, 0)) if k != "dropped" else str(total)
                                                  for k, _ in STAT_COLUMNS])
    out.append(_table(["interface", "mode"] + [h for _, h in STAT_COLUMNS], rows))
    reasons = {}
    for name, c in sorted(d.get("interfaces", {}).items()):
        dropped = c.get("dropped", {})
        if isinstance(dropped, dict):
            for reason, n in dropped.items():
                if n:
                    reasons[f"{name} {reason}"] = n
    if reasons:
        out.append("dropped by reason:")
        out.extend(f"  {k}: {v}" for k, v in sorted(reasons.items()))
    wrows = []
    for w in d.get("workers", []):
        rec = sum(int(c.get("received", 0)) for c in w.get("interfaces", {}).values())
        fwd = sum(int(c.get("forwarded", 0)) for c in w.get("interfaces", {}).values())
        wrows.append([str(w.get("worker")), str(w.get("pid")), str(w.get("label")), str(w.get("slot")),
                      str(rec), str(fwd), str(w.get("restarts", 0))])
    if wrows:
        out.append(_table(["worker", "pid", "pair", "slot", "received", "forwarded", "restarts"], wrows))
    insp = d.get("inspector", {})
    keys = ("packets", "alerts", "drops", "rules.loaded", "rules.failed", "rules.reloads", "engine.errors",
            "flow.active")
    shown = [(k, insp[k]) for k in keys if k in insp]
    if shown:
        out.append("inspector: " + ", ".join(f"{k} {v}" for k, v in shown))
    hits = d.get("rules", {}).get("top", [])
    if hits:
        out.append(_table(["sid", "hits", "msg"], [[str(h["sid"]), str(h["hits"]), h.get("msg", "")]
                                                   for h in hits[:top]]))
    return "\n".join(out)


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)
