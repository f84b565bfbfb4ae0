"""Start and stop a local IPFS node that serves the Kubo RPC API (``/api/v0``).

Two kinds of node, one lifecycle:

- :class:`JsIpfsNode` runs the archived js-ipfs (npm ``ipfs`` 0.66.1) from the project's
  ``node_modules``. kubo cannot be installed on every machine (it cannot on our CI
  machine); js-ipfs serves the same ``/api/v0`` add/cat/pin/block calls, so tests and users
  without kubo get a real daemon. Three things make it run offline on Node 20: a
  ``Promise.withResolvers`` polyfill loaded with ``node --require``
  (``orchestration/ipfs/polyfill.cjs``), empty ``Addresses.Swarm``, ``Addresses.Delegates``
  and ``Bootstrap`` (it would otherwise dial the public network), and clients that put an
  explicit ``Content-Type`` on every multipart part (see :mod:`fedtss.storage.kubo`).
- :class:`KuboNode` runs a real ``ipfs`` (kubo) binary found on PATH, offline, on its own
  repository.

Both listen on 127.0.0.1 only (js-ipfs can also join a swarm on loopback, peered with given
nodes: ``swarm_port``, ``peers``, :func:`start_peered_nodes`; its libp2p packages agree on one
multiaddr version through the ``@multiformats/multiaddr@^12`` override in ``package.json``, without
which libp2p filters out every TCP address and identify fails). Port 0 (the default) lets the daemon pick a free port; the
address it bound is read back from the ``api`` file the daemon writes into its repository,
so there is no race between choosing a port and binding it. A node is ready when
``/api/v0/version`` answers. :meth:`IpfsNode.stop` sends SIGTERM (both daemons shut down
cleanly and release their repository lock on it) and SIGKILL only after a grace period.

``python -m orchestration.ipfs_node STATE_DIR [--port 5001]`` runs a js-ipfs node in the
foreground for users without kubo, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from fedtss.errors import ConfigError, StorageError

__all__ = ["IpfsNode", "JsIpfsNode", "KuboNode", "PROJECT_ROOT", "main", "start_peered_nodes"]

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_POLYFILL = Path(__file__).resolve().parent / "ipfs" / "polyfill.cjs"
_JSIPFS_CLI = Path("node_modules") / "ipfs" / "src" / "cli.js"

_OFFLINE_ADDRESSES = {"Swarm": [], "Delegates": [], "Gateway": "", "RPC": ""}
"""Listen on nothing but the RPC API and dial no one: the node is a local blob server."""


class IpfsNode:
    """One daemon process on its own repository; a context manager that stops it on exit.

    ``state_dir`` holds ``repo/`` (the IPFS repository, kept between runs so blobs survive
    a restart) and ``daemon.log`` (the daemon's stdout and stderr, read when it fails).
    """

    name = "ipfs"

    def __init__(self, state_dir: str | os.PathLike[str], *, port: int = 0,
                 startup_timeout: float = 60.0) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError(f"IPFS API port must be 0 (any free port) or 1-65535, got {port}")
        self.state_dir = Path(state_dir)
        self.repo_dir = self.state_dir / "repo"
        self.log_path = self.state_dir / "daemon.log"
        self.port = port
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._api_url: str | None = None

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running daemon's RPC API."""
        if self._api_url is None:
            raise StorageError(f"the {self.name} node in {self.state_dir} is not running; start() it first")
        return self._api_url

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The daemon process while it is started, else None."""
        return self._process

    def start(self) -> str:
        """Prepare the repository, start the daemon, wait until it answers; return its API URL."""
        if self._process is not None:
            return self.api_url
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._clear_stale_files()
        self._prepare_repo()
        started = time.monotonic()
        errors_path = self._errors_path()
        if errors_path is not None:
            errors_path.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log_file, \
                (open(errors_path, "ab") if errors_path else open(os.devnull, "ab")) as errors_file:
            self._process = subprocess.Popen(
                self._command(),
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=errors_file if errors_path else subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop it
            )
        try:
            self._api_url = self._wait_until_ready(started + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        log.info("%s node ready at %s after %.1f s (pid %d)", self.name, self._api_url,
                 time.monotonic() - started, self._process.pid)
        return self._api_url

    def stop(self, *, grace: float = 10.0) -> None:
        """Stop the daemon: SIGTERM, then SIGKILL if it has not exited after ``grace`` seconds."""
        process, self._process, self._api_url = self._process, None, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("%s node (pid %d) ignored SIGTERM for %.0f s; killing it",
                        self.name, process.pid, grace)
            process.kill()
            process.wait()

    def __enter__(self) -> IpfsNode:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _prepare_repo(self) -> None:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return {**os.environ, "IPFS_PATH": str(self.repo_dir)}

    def _clear_stale_files(self) -> None:
        """Remove what a killed daemon left behind, but never start a second daemon on a repo."""
        url = self._read_api_file()
        if url is None:
            return
        if _answers(url):
            raise StorageError(f"a daemon already serves {self.repo_dir} at {url}: use it, or stop it first")
        log.info("removing files left in %s by a %s daemon that is gone", self.repo_dir, self.name)
        (self.repo_dir / "api").unlink(missing_ok=True)
        self._clear_stale_lock()

    def _clear_stale_lock(self) -> None:
        """kubo's lock is an flock, released by the kernel when its holder dies: nothing to do."""

    def _errors_path(self) -> Path | None:
        """Where the daemon's stderr goes when it is read apart from its log (None: into the log)."""
        return None

    def _start_error(self) -> str | None:
        """What the daemon said went wrong during start-up, if it said so without exiting."""
        return None

    def _wait_until_ready(self, deadline: float) -> str:
        """Poll for the ``api`` file, then for an answer from ``/api/v0/version``."""
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise StorageError(f"{self.name} daemon exited during start-up; its output:\n"
                                   f"{self._log_tail()}")
            error = self._start_error()
            if error is not None:
                raise StorageError(f"{self.name} daemon in {self.state_dir} failed to start: {error}")
            url = self._read_api_file()
            if url is not None and _answers(url):
                return url
            time.sleep(0.05)
        raise StorageError(f"{self.name} daemon did not answer within {self.startup_timeout:.0f} s "
                           f"(raise startup_timeout?); its output:\n{self._log_tail()}")

    def _read_api_file(self) -> str | None:
        """Turn the ``/ip4/127.0.0.1/tcp/<port>[/http]`` multiaddr the daemon wrote into a URL."""
        try:
            parts = (self.repo_dir / "api").read_text().strip().split("/")
        except FileNotFoundError:
            return None
        if len(parts) < 5 or parts[1] != "ip4" or parts[3] != "tcp":
            return None
        return f"http://{parts[2]}:{parts[4]}"

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no output)"


class JsIpfsNode(IpfsNode):
    """js-ipfs 0.66.1 from ``node_modules``: offline (RPC API only), or online on a loopback swarm port.

    Online (``swarm_port`` given, 0 = any free port), the node listens for peers on
    ``/ip4/<swarm_host>/tcp/<swarm_port>`` (loopback unless told otherwise) and dials only the
    peers it is told about: ``peers`` (full
    multiaddrs ending in ``/p2p/<id>``) are its bootstrap list, with every discovery off, and
    :meth:`connect` dials one more at run time (kubo's ``Peering.Peers``, which js-ipfs lacks).
    """

    name = "js-ipfs"

    def __init__(self, state_dir: str | os.PathLike[str], *, port: int = 0, startup_timeout: float = 60.0,
                 project_root: str | os.PathLike[str] = PROJECT_ROOT, node: str | None = None,
                 swarm_port: int | None = None, peers: Sequence[str] = (), swarm_host: str = "127.0.0.1") -> None:
        super().__init__(state_dir, port=port, startup_timeout=startup_timeout)
        if not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", swarm_host):
            raise ConfigError(f"IPFS swarm host must be an IPv4 address such as 127.0.0.1 or 0.0.0.0, got {swarm_host!r}")
        self.swarm_host = swarm_host
        if swarm_port is not None and not 0 <= swarm_port <= 65535:
            raise ConfigError(f"IPFS swarm port must be 0 (any free port) or 1-65535, got {swarm_port}")
        self.swarm_port = swarm_port
        self.peers = tuple(peers)
        self.cli = Path(project_root) / _JSIPFS_CLI
        self.node = node or shutil.which("node")
        if self.node is None:
            raise ConfigError("js-ipfs needs Node.js: put `node` (v20) on PATH")
        if not self.cli.is_file():
            raise ConfigError(f"js-ipfs is not installed at {self.cli}: run `npm ci` in {project_root}")

    @property
    def online(self) -> bool:
        return self.swarm_port is not None

    def _command(self) -> list[str]:
        return [self.node, "--require", str(_POLYFILL), str(self.cli), "daemon",
                *([] if self.online else ["--offline"]),
                "--enable-preload=false", "--init-config", str(self.state_dir / "init-config.json")]

    def identity(self) -> tuple[str, list[str]]:
        """``(peer id, swarm multiaddrs with /p2p/<id>)`` of the running node (``/api/v0/id``)."""
        answer = httpx.post(f"{self.api_url}/api/v0/id", timeout=10.0).json()
        return answer["ID"], [a for a in answer.get("Addresses") or [] if "/tcp/" in a]

    def connect(self, address: str, *, timeout: float = 30.0) -> None:
        """Dial the peer at ``address`` (``/ip4/…/tcp/…/p2p/<id>``); StorageError if it cannot."""
        try:
            response = httpx.post(f"{self.api_url}/api/v0/swarm/connect", params={"arg": address},
                                  timeout=timeout)
        except httpx.HTTPError as exc:
            raise StorageError(f"{self.name} node {self.api_url} could not dial {address}: {exc}") from exc
        if response.status_code != 200:
            raise StorageError(f"{self.name} node {self.api_url} could not dial {address}: "
                               f"{response.text.strip()[:300]}")

    def _clear_stale_lock(self) -> None:
        """js-ipfs locks with a directory it refreshes; a dead holder's lock blocks start for 20 s."""
        shutil.rmtree(self.repo_dir / "repo.lock", ignore_errors=True)

    def _errors_path(self) -> Path:
        """js-ipfs's stderr, kept apart: a fatal start-up error (libp2p cannot listen, say) is one
        line there, and the daemon then neither exits nor serves (its repo lock keeps it alive)."""
        return self.state_dir / "daemon.err"

    def _start_error(self) -> str | None:
        try:
            text = self._errors_path().read_text(errors="replace").strip()
        except FileNotFoundError:
            return None
        return " ".join(text.split())[:500] or None

    def _environment(self) -> dict[str, str]:
        environment = super()._environment()
        environment.pop("DEBUG", None)  # its libp2p debug output would flood daemon.log
        return environment

    def _prepare_repo(self) -> None:
        """Write the offline config: used by ``--init`` on a new repo, patched into an old one."""
        (self.state_dir / "init-config.json").write_text(json.dumps(self._offline_config({})))
        config_path = self.repo_dir / "config"
        if config_path.is_file():
            config = json.loads(config_path.read_text())
            config_path.write_text(json.dumps(self._offline_config(config), indent=2))

    def _offline_config(self, config: dict[str, object]) -> dict[str, object]:
        addresses = dict(config.get("Addresses") or {})  # type: ignore[call-overload]
        addresses.update(_OFFLINE_ADDRESSES, API=f"/ip4/127.0.0.1/tcp/{self.port}")
        if self.online:
            addresses["Swarm"] = [f"/ip4/{self.swarm_host}/tcp/{self.swarm_port}"]
        discovery = {"MDNS": {"Enabled": False}, "webRTCStar": {"Enabled": False}}
        return {**config, "Addresses": addresses, "Bootstrap": list(self.peers), "Discovery": discovery}


class KuboNode(IpfsNode):
    """A real kubo ``ipfs`` daemon, offline, on its own repository."""

    name = "kubo"

    def __init__(self, state_dir: str | os.PathLike[str], *, port: int = 0, startup_timeout: float = 60.0,
                 ipfs: str | None = None) -> None:
        super().__init__(state_dir, port=port, startup_timeout=startup_timeout)
        self.ipfs = ipfs or shutil.which("ipfs")
        if self.ipfs is None:
            raise ConfigError("kubo is not installed: put its `ipfs` binary on PATH")

    def _command(self) -> list[str]:
        return [str(self.ipfs), "daemon", "--offline"]

    def _prepare_repo(self) -> None:
        if not (self.repo_dir / "config").is_file():
            self._ipfs("init", "--profile", "test")  # test: no bootstrap peers, no MDNS
        self._ipfs("config", "Addresses.API", f"/ip4/127.0.0.1/tcp/{self.port}")
        self._ipfs("config", "Addresses.Gateway", "")
        for key in ("Addresses.Swarm", "Bootstrap"):
            self._ipfs("config", "--json", key, "[]")

    def _ipfs(self, *args: str) -> None:
        command = [str(self.ipfs), *args]
        result = subprocess.run(command, env=self._environment(), capture_output=True, text=True,
                                timeout=60, check=False)
        if result.returncode != 0:
            raise StorageError(f"`ipfs {' '.join(args)}` failed in {self.repo_dir}: {result.stderr.strip()}")


def start_peered_nodes(folder: Path, count: int, *, startup_timeout: float = 60.0) -> list[JsIpfsNode]:
    """``count`` online js-ipfs nodes in ``folder/host-1`` ... ``host-count``, each dialled by every
    later one: a full mesh on loopback, nothing else dialled. Stops them all if one fails."""
    nodes: list[JsIpfsNode] = []
    try:
        for number in range(1, count + 1):
            node = JsIpfsNode(folder / f"host-{number}", swarm_port=0, startup_timeout=startup_timeout)
            nodes.append(node)
            node.start()
            for earlier in nodes[:-1]:
                peer_id, addresses = earlier.identity()
                if not addresses:
                    raise StorageError(f"{earlier.name} node {earlier.api_url} listens on no swarm address; "
                                       f"its output:\n{earlier._log_tail()}")
                node.connect(addresses[0] if "/p2p/" in addresses[0] else f"{addresses[0]}/p2p/{peer_id}")
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


def _answers(url: str) -> bool:
    try:
        return httpx.post(f"{url}/api/v0/version", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def main(argv: list[str] | None = None) -> None:
    """Serve a js-ipfs node on ``STATE_DIR`` until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m orchestration.ipfs_node", description=main.__doc__)
    parser.add_argument("state_dir", type=Path, help="directory for the node's repo/ and daemon.log")
    parser.add_argument("--port", type=int, default=5001, help="RPC API port on 127.0.0.1 (0: any free)")
    parser.add_argument("--swarm-port", type=int, default=None,
                        help="join a swarm on this TCP port (0: any free); offline without it")
    parser.add_argument("--swarm-host", default="127.0.0.1",
                        help="the IPv4 address to listen for peers on (0.0.0.0: every interface)")
    parser.add_argument("--peer", action="append", default=[],
                        help="a peer to dial, /ip4/…/tcp/…/p2p/<id> (repeat for more); only these are dialled")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with JsIpfsNode(arguments.state_dir, port=arguments.port, swarm_port=arguments.swarm_port,
                    peers=arguments.peer, swarm_host=arguments.swarm_host) as node:
        if node.online:
            peer_id, addresses = node.identity()
            print(f"peer {peer_id} listening on {', '.join(addresses)}", flush=True)
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # after start: the daemon must not inherit it
        print(f"Kubo RPC API at {node.api_url}; Ctrl-C to stop", flush=True)
        signal.sigwait(stop_signals)


if __name__ == "__main__":
    main()
