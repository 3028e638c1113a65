"""The local stack without Docker: a real Apache Kafka broker (KRaft, single node), a real Redis,
and the three services, each a child process of this runner.

`make up` runs `python -m deploy.local.stack up`; the test suite imports `KafkaServer` and
`RedisServer` to start its own broker and Redis on free ports.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.keycloak import KeycloakServer, commander_otp_wanted, describe

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "deploy" / "kafka" / "pom.xml"
LOG4J_CONFIG = ROOT / "deploy" / "kafka" / "log4j2.yaml"
DEFAULT_CACHE = Path(os.environ.get("HOMEWARD_CACHE_DIR", Path.home() / ".cache" / "homeward"))


def _die_with_parent() -> None:
    """In the child before exec: on Linux, get SIGTERM when the process that started us dies,
    so a killed test run or a killed `make up` leaves no broker, Redis or service behind."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# Ports free_port has handed out in this process: a child may not have bound one yet.
_HANDED_OUT: set[int] = set()
_LOWEST_PORT = 10_000


def _ephemeral_ports() -> range:
    """The kernel's ephemeral range (net.ipv4.ip_local_port_range): where bind(0) and every
    outgoing connection take their local port."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_port() -> int:
    """A loopback port nothing is bound to, for a child process to bind a moment later.

    Drawn below the kernel's ephemeral range, so no bind(0) and no outgoing connection of any
    process can take it between this call and the child's bind. A port from bind(0) could be:
    the nodes of a local cluster connect to each other while they start, and a node whose
    listener port had just gone to a peer's connection exited with "Address already in use"
    (CI, stop 15). Never the same port twice in one process. Falls back to bind(0) when the
    range below the ephemeral one is too small or full."""
    candidates = range(_LOWEST_PORT, _ephemeral_ports().start)
    roomy = len(candidates) > 1000
    for _ in range(10_000):
        port = secrets.choice(candidates) if roomy else 0
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free loopback port")


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None:
        return ""
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"; last lines of {log}:\n" + "\n".join(text)


def _port_open(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


class ChildExited(RuntimeError):
    """A child exited before its port opened; the message ends with its log's tail."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path | None) -> None:
        super().__init__(f"process exited with {proc.returncode} before port {port} "
                         f"opened{_tail(log)}")
        self.log = log


# (port, the child that will listen on it or None, its log or None)
Child = tuple[int, "subprocess.Popen[bytes] | None", "Path | None"]


def wait_for_ports(children: list[Child], timeout: float) -> None:
    """Until something listens on every child's port. Raises ChildExited when any child exits
    first (whichever: the others may never open theirs without it, as the nodes of a
    cluster cannot form a quorum), TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    waiting = list(children)
    while True:
        for port, proc, log in children:
            if proc is not None and proc.poll() is not None:
                raise ChildExited(proc, port, log)
        waiting = [c for c in waiting if not _port_open(c[0])]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on 127.0.0.1:{[c[0] for c in waiting]} "
                               f"after {timeout}s")
        time.sleep(0.1)


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None,
                  log: Path | None = None) -> None:
    """wait_for_ports of one child."""
    wait_for_ports([(port, proc, log)], timeout)


def kafka_version() -> str:
    text = POM.read_text()
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>")]


def ensure_kafka_jars(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """Fetch the pinned broker jars with Maven once; later calls reuse them."""
    libs = cache_dir / f"kafka-{kafka_version()}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise RuntimeError("Java 17 and Maven are needed to fetch and run the Kafka broker")
    libs.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
        ],
        check=True,
    )
    marker.touch()
    return libs


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class KafkaServer:
    """A single-node KRaft broker+controller on 127.0.0.1."""

    data_dir: Path
    port: int = 9092
    controller_port: int = 0
    heap: str = "512m"
    # More `key=value` lines of server.properties (a test's broker: e.g. a short retention check).
    properties: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        if not self.controller_port:
            self.controller_port = free_port()
        log_dir = self.data_dir / "kraft-logs"
        config = self.data_dir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={log_dir}",
                    "num.partitions=6",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.flush.interval.messages=1",
                    *self.properties,
                    "",
                ]
            )
        )
        return config

    def start(self, timeout: float = 90) -> KafkaServer:
        libs = ensure_kafka_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        java = ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", "-cp", f"{libs}/*"]
        if not (self.data_dir / "kraft-logs" / "meta.properties").exists():
            subprocess.run(
                # `=`: a random id may start with "-" and must not be read as an option.
                [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id()}",
                 "-c", str(config), "--ignore-formatted"],
                check=True, stdout=subprocess.DEVNULL,
            )
        log = (self.data_dir / "broker.log").open("ab")
        self.proc = subprocess.Popen(
            [*java, "kafka.Kafka", str(config)], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        wait_for_port(self.port, timeout, self.proc, self.data_dir / "broker.log")
        return self

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        _stop(self.proc, timeout=30)


@dataclass
class RedisServer:
    data_dir: Path
    port: int = 6379
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make install` (Debian package)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        wait_for_port(self.port, timeout, self.proc, self.data_dir / "redis.log")
        return self

    def stop(self) -> None:
        _stop(self.proc)


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    ops_port: int = 0  # the internal port (/metrics, /docs); 0: a free one at start

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """/metrics, /docs and /openapi.json (the internal port, never published)."""
        return f"http://127.0.0.1:{self.ops_port}"

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        if not self.ops_port:
            self.ops_port = int(self.env.get("HOMEWARD_OPS_PORT") or free_port())
        env = {**os.environ, **self.env, "HOMEWARD_OPS_PORT": str(self.ops_port)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Until /readyz answers 200 and the ops port answers (several alert workers: the one
        elected for the background duties serves it, issue 15)."""
        deadline = time.monotonic() + timeout
        last = ""
        pending = [f"{self.url}/readyz", f"{self.ops_url}/healthz"]
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                # uvicorn's supervisor of several alert workers exits with 0 when a worker's
                # startup failed: the log says why.
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it "
                                   f"was ready{_tail(self.log_path, 40)}")
            try:
                with urllib.request.urlopen(pending[0], timeout=2) as resp:
                    if resp.status == 200:
                        pending.pop(0)
                        if not pending:
                            return
                        continue
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout}s ({last})"
                           f"{_tail(self.log_path, 40)}")

    def kill(self) -> None:
        """SIGKILL the service: its process group (several alert workers included)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # start_new_session: pgid == pid
            self.proc.wait(10)

    def stop(self) -> None:
        _stop(self.proc)


SERVICES = ("alert", "dispatch", "notify")


def local_secret(data_dir: Path, name: str | None = None, content: str | None = None) -> Path:
    """A stack secret in `<data_dir>/<name>` (default the JWT secret, `jwt-secret`; also
    `identity-secret`, the child-identity HMAC key): random, made once, readable by its owner
    only. The services and `python -m shared.tokens` read it (no committed default)."""
    from shared.settings import LOCAL_SECRET_FILE

    path = data_dir / (name or LOCAL_SECRET_FILE)
    if not path.is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write((content or secrets.token_urlsafe(48)) + "\n")
    return path


def local_subscriber_key(data_dir: Path) -> str:
    """notify's key sealing subscriber secrets, `<data_dir>/notify-subscriber-key`: made once
    (the subscriber log in this data dir is sealed with it), readable by its owner only."""
    from services.notify.sealing import new_key

    path = data_dir / "notify-subscriber-key"
    if not path.is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new_key("local") + "\n")
    return path.read_text(encoding="utf-8").strip()


def local_signing_keys(data_dir: Path) -> dict[str, str]:
    """The issuer's signing key of the local stack (issue 17): `local-1` generated once into
    `<data_dir>/signing` (key 0600), and the environment naming it for notify, which outside
    development refuses to start without a configured key."""
    from services.notify.keystore import LOCAL_KID, generate_key, key_paths

    directory = data_dir / "signing"
    if not key_paths(directory, LOCAL_KID)[0].is_file():
        generate_key(directory, LOCAL_KID, "Homeward (local stack)")
    return {"HOMEWARD_SIGNING_DIR": str(directory),
            "HOMEWARD_SIGNING_KEYS": json.dumps({LOCAL_KID: "active"})}


def stack_env(data_dir: Path, keycloak: KeycloakServer | None = None) -> dict[str, str]:
    """What every service of a local stack gets besides its Kafka and Redis, the single-broker
    stack and `make up BROKERS=3` (deploy/local/cluster_stack.py) alike: the keys no repository
    holds, generated into `data_dir` once (the JWT key file, the child-identity key file,
    notify's subscriber key ring, the issuer's signing key; an operator's own HOMEWARD_*
    variable wins), and with
    `keycloak` its issuer (waits until it is ready)."""
    env = {} if {"HOMEWARD_JWT_SECRET", "HOMEWARD_JWT_SECRET_FILE"} & os.environ.keys() \
        else {"HOMEWARD_JWT_SECRET_FILE": str(local_secret(data_dir))}
    if "HOMEWARD_NOTIFY_SUBSCRIBER_KEYS" not in os.environ:
        env["HOMEWARD_NOTIFY_SUBSCRIBER_KEYS"] = json.dumps([local_subscriber_key(data_dir)])
    if not {"HOMEWARD_IDENTITY_SECRET", "HOMEWARD_IDENTITY_SECRET_FILE"} & os.environ.keys():
        from shared.settings import LOCAL_IDENTITY_FILE

        env["HOMEWARD_IDENTITY_SECRET_FILE"] = str(local_secret(data_dir, LOCAL_IDENTITY_FILE))
    if not {"HOMEWARD_PII_MASTER_KEYS", "HOMEWARD_PII_MASTER_KEYS_FILE"} & os.environ.keys():
        from shared.pii import MasterKeys
        from shared.settings import LOCAL_PII_KEYS_FILE

        env["HOMEWARD_PII_MASTER_KEYS_FILE"] = str(local_secret(
            data_dir, LOCAL_PII_KEYS_FILE, MasterKeys.generate("local-1")))
    if not {"HOMEWARD_SIGNING_DIR", "HOMEWARD_SIGNING_KEYS"} & os.environ.keys():
        env.update(local_signing_keys(data_dir))
    if keycloak is not None:
        env["HOMEWARD_OIDC_ISSUER"] = keycloak.wait_ready().issuer
    return env


def start_keycloak(data_dir: Path, port: int, commander_otp: bool = False
                   ) -> KeycloakServer | None:
    """The identity provider (issue 20) started first: it comes up (~40 s) while Kafka does;
    `stack_env` waits for it. Port 0: none (minted development tokens only). `commander_otp`:
    the realm demands a one-time code of commanders (deploy/local/keycloak.py)."""
    if not port:
        return None
    return KeycloakServer(data_dir / "keycloak", port=port, commander_otp=commander_otp).start()


def describe_stack(stack: dict[str, object], data_dir: Path) -> str:
    """The lines `make up` prints under "Homeward is up": each service's URL and ops port,
    Keycloak's sign-in pages and accounts, how to mint a development token."""
    lines = []
    for name in SERVICES:
        svc = stack[name]
        assert isinstance(svc, ServiceProcess)
        lines.append(f"  {name:<10} {svc.url}  (docs, metrics: {svc.ops_url}/docs)")
    if isinstance(keycloak := stack.get("keycloak"), KeycloakServer):
        pages = {"alert": "intake", "dispatch": "console", "notify": "hub"}
        lines.append(describe(keycloak, {page: f"{getattr(stack[name], 'url', '')}/{page}"
                                         for name, page in pages.items()}))
    lines.append(f"\nTokens: HOMEWARD_DATA_DIR={data_dir} "
                 "python -m shared.tokens --role operator --region 140403")
    return "\n".join(lines)


def service_env(
    bootstrap: str, redis_url: str, data_dir: Path, ports: dict[str, int]
) -> dict[str, str]:
    """Environment shared by the three services; names follow shared.settings."""
    return {
        "HOMEWARD_KAFKA_BOOTSTRAP": bootstrap,
        "HOMEWARD_REDIS_URL": redis_url,
        "HOMEWARD_DATA_DIR": str(data_dir),
        "HOMEWARD_ALERT_URL": f"http://127.0.0.1:{ports['alert']}",
        "HOMEWARD_DISPATCH_URL": f"http://127.0.0.1:{ports['dispatch']}",
        "HOMEWARD_NOTIFY_URL": f"http://127.0.0.1:{ports['notify']}",
        # The local sinks and hubs listen on loopback: only that, never the whole network.
        "HOMEWARD_WEBHOOK_ALLOW_NETWORKS": '["127.0.0.1/32", "::1/128"]',
    }


def start_services(
    bootstrap: str, redis_url: str, data_dir: Path, ports: dict[str, int],
    extra_env: dict[str, str] | None = None,
) -> dict[str, ServiceProcess]:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = service_env(bootstrap, redis_url, data_dir, ports)
    env.update(extra_env or {})
    return start_all([ServiceProcess(name, ports[name], {**env, "HOMEWARD_PORT": str(ports[name])},
                                     data_dir / f"{name}.log") for name in SERVICES])


def start_all(services: list[ServiceProcess]) -> dict[str, ServiceProcess]:
    """Start every service, then wait until each is ready; by name. When one fails to start,
    every one already started is stopped before the error goes on: the caller never got them
    to stop, and a service left behind would go on consuming (its consumer groups are the
    next stack's)."""
    procs: dict[str, ServiceProcess] = {}
    try:
        for service in services:
            procs[service.name] = service.start()
        for proc in procs.values():
            proc.wait_ready()
    except BaseException:
        for proc in procs.values():
            proc.stop()
        raise
    return procs


@contextlib.contextmanager
def running_stack(
    data_dir: Path, kafka_port: int, redis_port: int, ports: dict[str, int],
    keycloak_port: int = 0, commander_otp: bool = False,
) -> Iterator[dict[str, object]]:
    kafka = KafkaServer(data_dir / "kafka", port=kafka_port)
    redis = RedisServer(data_dir / "redis", port=redis_port)
    started: list[KafkaServer | RedisServer | ServiceProcess | KeycloakServer] = []
    try:
        keycloak = start_keycloak(data_dir, keycloak_port, commander_otp)
        if keycloak is not None:
            started.append(keycloak)
        started.append(redis.start())
        started.append(kafka.start())
        from shared.kafka import ensure_topics

        asyncio.run(ensure_topics(kafka.bootstrap))
        services = start_services(kafka.bootstrap, redis.url, data_dir, ports,
                                  stack_env(data_dir, keycloak))
        started.extend(services.values())
        yield {"kafka": kafka, "redis": redis, **services,
               **({"keycloak": keycloak} if keycloak else {})}
    finally:
        for item in reversed(started):
            item.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Homeward stack locally (no Docker).")
    parser.add_argument("command", choices=["up", "fetch-kafka"])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("HOMEWARD_DATA_DIR", ROOT / ".data")))
    parser.add_argument("--kafka-port", type=int,
                        default=int(os.environ.get("HOMEWARD_KAFKA_PORT", "9092")))
    parser.add_argument("--redis-port", type=int,
                        default=int(os.environ.get("HOMEWARD_REDIS_PORT", "6379")))
    parser.add_argument("--alert-port", type=int,
                        default=int(os.environ.get("HOMEWARD_ALERT_PORT", "8000")))
    parser.add_argument("--dispatch-port", type=int,
                        default=int(os.environ.get("HOMEWARD_DISPATCH_PORT", "8001")))
    parser.add_argument("--notify-port", type=int,
                        default=int(os.environ.get("HOMEWARD_NOTIFY_PORT", "8002")))
    parser.add_argument("--keycloak-port", type=int,
                        default=int(os.environ.get("HOMEWARD_KEYCLOAK_PORT", "8180")),
                        help="identity provider (issue 20); 0: none, minted tokens only")
    parser.add_argument("--commander-otp", action=argparse.BooleanOptionalAction,
                        default=commander_otp_wanted(),
                        help="commanders must sign in with a one-time code (realm browser flow)")
    args = parser.parse_args(argv)
    if args.command == "fetch-kafka":
        print(ensure_kafka_jars())
        return 0

    ports = {"alert": args.alert_port, "dispatch": args.dispatch_port, "notify": args.notify_port}
    return serve(lambda: running_stack(args.data_dir, args.kafka_port, args.redis_port, ports,
                                       args.keycloak_port, args.commander_otp),
                 lambda stack: f"Kafka {kafka_version()} on 127.0.0.1:{args.kafka_port}, "
                               f"Redis on 127.0.0.1:{args.redis_port}",
                 args.data_dir)


def serve(open_stack: Callable[[], contextlib.AbstractContextManager[dict[str, object]]],
          heading: Callable[[dict[str, object]], str], data_dir: Path) -> int:
    """`make up`'s foreground: start the stack `open_stack` opens, print `heading(stack)` and
    describe_stack, run until Ctrl-C/SIGTERM or a service exits, then stop everything (a signal
    while starting unwinds at once). Used by this runner and deploy/local/cluster_stack.py."""
    stop = False
    started = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True
        if not started:  # still starting: unwind now; running_stack stops what is up
            raise KeyboardInterrupt

    # Both, explicitly: a shell that starts `make up` in the background leaves SIGINT ignored,
    # and Python then never turns it into KeyboardInterrupt.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    began = time.monotonic()
    try:
        with open_stack() as stack:
            print(f"\nHomeward is up in {time.monotonic() - began:.1f}s (data in {data_dir}):")
            print(f"  {heading(stack)}")
            print(describe_stack(stack, data_dir))
            print("Ctrl-C stops everything.", flush=True)
            started = True
            while not stop:
                for name in SERVICES:
                    svc = stack[name]
                    assert isinstance(svc, ServiceProcess) and svc.proc is not None
                    if svc.proc.poll() is not None:
                        print(f"{name} exited with {svc.proc.returncode}; stopping", flush=True)
                        stop = True
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    print("stopped", flush=True)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
