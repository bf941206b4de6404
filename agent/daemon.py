"""vokterd: the composition root. Reads the config, opens the store, loads the policy, listens
on the socket, and runs until SIGTERM. SIGHUP reloads the policy; a bad policy keeps the old
one in force and says why. Every start, stop and reload is an audit event.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import structlog
from sqlmodel import select

from agent.access.runtime import AccessRuntime
from agent.access.users import name_of_uid
from agent.api.dispatch import Caller, RequestContext, dispatch, record_refusal
from agent.api.server import SocketServer
from agent.audit.keys import load_or_create_audit_keys
from agent.audit.sealer import Sealer
from agent.audit.sealing import check_at_start
from agent.audit.siem import keep_level, mask_identity_numbers
from agent.clock import Clock, FileClock, SystemClock, check_clock_file
from agent.config import Config, config_path_from_env, load_config
from agent.crypto.file_ops import recover_at_start
from agent.crypto.keystore import open_key_store
from agent.errors import ConfigError, PolicyInvalid, VokterError
from agent.lifecycle.scheduler import LifecycleScheduler
from agent.operations import OPERATIONS
from agent.policy import Policy, default_policy_path, load_named_policy, load_policy_file
from agent.sd_notify import notify, watchdog_interval
from agent.services import PolicyHolder, Services
from agent.storage.mount_monitor import MountMonitor
from agent.storage.relocate import journal_folder
from agent.storage.relocate import recover as recover_moves
from agent.storage.watcher import StorageWatcher
from agent.store import AuditEvent, Store
from agent.store.migrate import current_revision, upgrade

log = structlog.get_logger("vokterd")


def vokter_version() -> str:
    try:
        return version("vokter")
    except PackageNotFoundError:
        return "0+unknown"


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """JSON lines on stderr: the journal keeps them, and jq reads them. The audit feed (logger
    "vokter.audit", one line per committed event) passes whatever the level; identity numbers
    are masked in every line."""
    minimum = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            keep_level(minimum),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_identity_numbers,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(min(minimum, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def load_policy(config: Config) -> Policy:
    if config.policies_dir is None:
        return load_policy_file(default_policy_path())
    return load_named_policy(config.policies_dir, config.policy)


def trail_started(store: Store) -> bool:
    """Does the trail hold events already? Then its keys must exist, never be made afresh."""
    with store.read() as session:
        return session.exec(select(AuditEvent.seq).limit(1)).first() is not None


class StateLock:
    """One daemon per state directory: a second one would fork the audit chain."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(state_dir / "vokterd.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise VokterError(f"another vokterd is running with state_dir {state_dir}") from None

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


class Daemon:
    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        if clock is None and config.clock_file is not None:
            clock = FileClock(config.clock_file)
        self.clock = clock or SystemClock()
        self._wake = threading.Event()
        self._stopping = False
        self._reloading = False
        self._sealer: Sealer | None = None
        self.self_caller = Caller(uid=os.getuid(), gid=os.getgid(), pid=os.getpid(), name="vokterd")

    def _audit_self(self, services: Services, action: str, **fields: Any) -> None:
        with services.store.write() as session:
            RequestContext(self.self_caller, services).audit(session, action, **fields)

    def _reload_policy(self, services: Services) -> None:
        old = services.policies.current()
        try:
            new = load_policy(self.config)
        except PolicyInvalid as error:
            log.error("policy_reload_failed", kept=old.version, problems=error.issues[:20])
            record_refusal(services, self.self_caller, "policy.reload", error, None)
            return
        services.policies.replace(new)
        log.info("policy_reloaded", name=new.name, old_version=old.version, version=new.version)
        self._audit_self(services, "policy.reload",
                         details={"old_version": old.version, "version": new.version})

    def run(self) -> int:
        lock = StateLock(self.config.state_dir)
        try:
            if self.config.clock_file is not None:
                try:
                    check_clock_file(self.config.clock_file)
                except ValueError as error:
                    raise ConfigError(str(error)) from None
            policy = load_policy(self.config)
            store = Store(self.config.effective_database_url)
            store.ping()
            upgrade(store.engine)
            policies = PolicyHolder(policy)
            services = Services(
                config=self.config,
                store=store,
                clock=self.clock,
                policies=policies,
                version=vokter_version(),
                audit_keys=load_or_create_audit_keys(
                    self.config.key_store, trail_started=trail_started(store)
                ),
                # Refuses to start unless the master key unwraps every keyset (S5).
                key_store=open_key_store(
                    self.config, store, clock=self.clock,
                    segment_size=lambda: policies.current().crypto.segment_size),
                started_monotonic=self.clock.monotonic(),
                schema_revision=current_revision(store.engine),
            )
            server = SocketServer(
                self.config.socket_path,
                handle=lambda message, caller: dispatch(message, caller, services, OPERATIONS),
                refuse=lambda caller, error: record_refusal(
                    services, caller, "request", error, None
                ),
                name_of=name_of_uid,
                timeout=self.config.request_timeout,
                max_clients=self.config.max_clients,
            )
            started: dict[str, Any] = {"version": services.version}
            if self.config.clock_file is not None:
                started["clock_file"] = str(self.config.clock_file)  # a drill: say so
            self._audit_self(services, "daemon.start", details=started)
            # An attacked trail is recorded and logged, never a reason to stop enforcing.
            check_at_start(services, self.self_caller)
            # Encryptions in place that a crash interrupted are finished or undone first.
            recover_at_start(services, self.self_caller)
            self._sealer = sealer = Sealer(services, self.self_caller)
            sealer.start()
            access = AccessRuntime(services, self.self_caller)
            access.start()
            # Moves out of a zone that a crash interrupted are settled before any new one.
            self._recover_moves(services)
            services.storage = storage = StorageWatcher(services, self.self_caller)
            storage.start()
            mounts = MountMonitor(services, self.self_caller)
            mounts.start()
            services.watchers.append("portable media: mountinfo + sysfs")
            services.lifecycle = lifecycle = LifecycleScheduler(services, self.self_caller)
            lifecycle.start()
            server.start()
            try:
                self._main_loop(services)
            finally:
                notify("STOPPING=1")
                server.stop()
                lifecycle.stop()
                mounts.stop()
                storage.stop()
                access.stop()
                try:
                    self._audit_self(services, "daemon.stop", details={})
                finally:
                    sealer.stop()  # the last checkpoint covers daemon.stop
                store.close()
                log.info("stopped")
        finally:
            lock.release()
        return 0

    def _recover_moves(self, services: Services) -> None:
        for outcome in recover_moves(journal_folder(self.config.state_dir)):
            log.warning("move_recovered", **outcome)
            self._audit_self(services, "file.move_recovered", target=outcome.get("path"),
                             details=outcome)

    def _main_loop(self, services: Services) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        interval = watchdog_interval()
        notify("READY=1\nSTATUS=serving on " + str(self.config.socket_path))
        log.info("ready", socket=str(self.config.socket_path), store=services.store.backend,
                 policy=services.policies.current().version, version=services.version)
        while not self._stopping:
            self._wake.wait(timeout=interval or 3600)
            self._wake.clear()
            if interval:
                notify("WATCHDOG=1")
            if self._reloading and not self._stopping:
                self._reloading = False
                notify("RELOADING=1")
                self._reload_policy(services)
                if self._sealer is not None:
                    self._sealer.wake()  # the cadence may have changed
                notify("READY=1")

    def _on_stop(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        self._wake.set()

    def _on_reload(self, _signum: int, _frame: FrameType | None) -> None:
        self._reloading = True
        self._wake.set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vokterd",
        description="Vokter's daemon: keeps access lists, storage rules and the audit trail of "
        "the research projects on this host. Runs in the foreground (systemd Type=notify).",
        epilog="example: vokterd --config /etc/vokter/vokter.toml",
    )
    parser.add_argument("--config", help="config file (default: $VOKTER_CONFIG or "
                        "/etc/vokter/vokter.toml)")
    parser.add_argument("--version", action="version", version=f"vokterd {vokter_version()}")
    options = parser.parse_args(argv)
    configure_logging()
    try:
        config = load_config(config_path_from_env(options.config))
        configure_logging(config.log_level)
        return Daemon(config).run()
    except VokterError as error:
        log.error("cannot_start", error=error.one_line())
        print(f"vokterd: {error.one_line()}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        log.error("cannot_start", error=f"{error.strerror or error}{where}")
        print(f"vokterd: cannot start: {error.strerror or error}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
