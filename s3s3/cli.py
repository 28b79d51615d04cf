"""The command line: `s3s3 listen|bucket|audit|publish|check-config|...`, and the original's scripts.

`s3s3listen` and `s3s3bucket` are the same functions as `s3s3 listen` and
`s3s3 bucket`. Each command loads the configuration, sets up logging, builds
the clients, calls the library and maps what happened to an exit code. The
rarer commands import their modules when they run: s3s3bucket runs from cron,
and its start-up is most of what a run with nothing to do costs.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import socket
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from s3s3 import __version__, logs, names
from s3s3.config import LOG_FORMATS, LOG_LEVELS, Config, Endpoint, Mode, load, parse_size
from s3s3.copy.limits import Limits, keep_big_buffers_off_the_heap
from s3s3.errors import (
    EXIT_DIFFERS,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNHEARD,
    EXIT_USAGE,
    ConfigError,
    ListingOrderError,
    LockHeld,
    S3S3Error,
    StoreError,
)
from s3s3.listen.delivery import describe, publish
from s3s3.retry import describe as one_line
from s3s3.services import AuditClient, BucketClient, ListenClient
from s3s3.state import connect_redis, deadletter
from s3s3.store import open_store
from s3s3.sync.diff import KeyFilter
from s3s3.sync.fleet import SplitOpen
from s3s3.sync.options import SyncOptions
from s3s3.sync.progress import Progress

if TYPE_CHECKING:
    from s3s3.audit import AuditOptions

Command = Callable[[argparse.Namespace], int]
logger = logging.getLogger(__name__)
CHECK_TIMEOUT = 5.0  # seconds check-config, status KEY and doctor wait for a connection, by default

# The console scripts that run one subcommand under a name of their own.
SCRIPTS = {"s3s3listen": "listen", "s3s3bucket": "bucket"}
# The console scripts that print a shipped file (from s3s3/data/).
ECHOES = {"echo_s3s3_ini_template": "s3s3.ini.dist", "echo_s3s3_supervisord_conf": "supervisord.conf"}


@dataclass(frozen=True)
class About:
    """What a command's --help says besides its options (the reference pages say the same)."""

    summary: str  # what it does, in the line `s3s3 --help` gives it
    text: str  # what it does, in a few lines
    exits: tuple[tuple[int, str], ...]  # each exit code it returns, and what that means for it
    docs: str  # its page in the documentation, from the repository root

    def keywords(self) -> dict[str, Any]:
        """ArgumentParser's keywords for a --help that says what the command does, its exit codes and its page."""
        codes = "\n".join(f"  {code}  {meaning}" for code, meaning in self.exits)
        return {
            "description": textwrap.fill(self.text, 79),
            "epilog": f"exit codes:\n{codes}\n\ndocumentation: {self.docs}",
            "formatter_class": argparse.RawDescriptionHelpFormatter,
        }


_CONFIG_WRONG = (EXIT_USAGE, "bad configuration or command line (each problem is listed): nothing done")
_SERVICE_WRONG = (EXIT_USAGE, "bad configuration or command line, or a Redis older than 6.2: nothing done")
ABOUT = {
    "listen": About(
        "copy each key announced on Redis",
        "Read the announcements on the configured channel, stream or list ([pubsub] mode) and copy each "
        "announced key from the source to every destination, until SIGTERM or SIGINT; then finish the copies "
        "in flight. Stream and list modes acknowledge an announcement only once every destination holds the "
        "object. Several listeners in list mode need a --consumer name each.",
        ((EXIT_OK, "stopped by SIGTERM or SIGINT, every copy in flight finished"),
         (EXIT_FAILED, "stopped by a second signal, without finishing the copies in flight"), _SERVICE_WRONG),
        "docs/listener.md",
    ),
    "bucket": About(
        "copy every missing or changed key",
        "List the source and every destination side by side and copy each key that is missing or changed at "
        "a destination (with --delete, delete what the source no longer has); at a destination with versions = "
        "all, replay each key's missing versions and delete markers, oldest first. Catches up whatever the "
        "listener missed: run it from cron or a timer, beside the listeners; a lock in Redis keeps two syncs "
        "of the same buckets apart. --reverse --at TIME restores the source as it was at TIME.",
        ((EXIT_OK, "every key checked is at every destination (or another sync holds the lock)"),
         (EXIT_FAILED, "some keys failed (each is listed), or a store could not be listed"), _SERVICE_WRONG),
        "docs/bucket-sync.md",
    ),
    "audit": About(
        "prove each key at each destination; copy nothing",
        "Compare the source with each destination and say, key by key, how each copy is proven (a plain MD5 "
        "ETag, s3s3's recorded MD5, part ETags, rclone's md5chksum, a full-object checksum, or bytes read "
        "back); a JSON Lines report with a digest, rclone's check format, and a sample read back for fixity.",
        ((EXIT_OK, "every key is equal at every destination (extra keys are reported, not failed)"),
         (EXIT_FAILED, "some keys could not be audited (each is listed)"), _CONFIG_WRONG,
         (EXIT_DIFFERS, "a key differs, is missing or is unproven at a destination (each is listed)")),
        "docs/proving-a-backup.md",
    ),
    "publish": About(
        "announce keys on the configured channel",
        "Announce each KEY on the configured channel, stream or list, as a producer does, for the listeners "
        "to copy. Streams and lists keep a key until a listener takes it; in pubsub mode a key no listener is "
        "subscribed to is lost: it says so, and exits 3.",
        ((EXIT_OK, "every key was announced (in pubsub mode: received by a listener)"),
         (EXIT_FAILED, "Redis could not be reached"), _CONFIG_WRONG,
         (EXIT_UNHEARD, "pubsub mode: a key was received by no listener, so it is lost (each is named)")),
        "docs/announcing.md",
    ),
    "check-config": About(
        "validate the file and try every connection",
        "Read the configuration and report every problem in it, one line each; then connect to each bucket "
        "and to Redis, and say ok or what failed for each.",
        ((EXIT_OK, "the file is valid and every connection works"),
         (EXIT_FAILED, "a bucket or Redis could not be reached (each is listed)"), _CONFIG_WRONG),
        "docs/configuration.md",
    ),
    "doctor": About(
        "probe each endpoint's store and recommend options",
        "Probe each endpoint's store (or the SECTIONs named) in a scratch prefix it deletes afterwards: "
        "signature versions, addressing, checksums, Content-MD5, multipart ETags, listing, metadata, storage "
        "class, tags, encryption and ACLs; then print the options that store needs.",
        ((EXIT_OK, "every endpoint probed is usable"), (EXIT_FAILED, "an endpoint is not usable, or unreachable"),
         _CONFIG_WRONG),
        "docs/compatibility.md",
    ),
    "failed": About(
        f"list the dead-letter stream {names.DEADLETTER!r}",
        f"List the dead-letter stream {names.DEADLETTER!r}, oldest first: each key that still failed after its "
        "retries (with its destination and error), and each announcement that could not be understood.",
        ((EXIT_OK, "listed"), (EXIT_FAILED, "Redis could not be reached"), _CONFIG_WRONG),
        "docs/announcing.md",
    ),
    "retry-failed": About(
        "announce the dead-lettered keys again",
        f"Announce each key of the dead-letter stream {names.DEADLETTER!r} again, once per key, and remove the "
        "entries of the keys announced.",
        ((EXIT_OK, "every failed key was announced again"),
         (EXIT_FAILED, "some could not be announced, or Redis could not be reached"), _CONFIG_WRONG),
        "docs/announcing.md",
    ),
    "status": About(
        "the backlog, dead letters and last copies; or one KEY everywhere",
        "Without KEY: the backlog (announcements waiting and pending), the dead letters and each "
        "destination's last copy. With KEY: the key's size, ETag and MD5 at the source and every "
        "destination, and whether each is in sync (with versions = all, or a versioned source: its versions on "
        "each side, and which each copy replays). With --sync: the last s3s3bucket --split sync's progress.",
        ((EXIT_OK, "shown (with KEY: in sync everywhere)"),
         (EXIT_FAILED, "with KEY: missing or different somewhere, or a store unreachable; else Redis unreachable"),
         _CONFIG_WRONG),
        "docs/monitoring.md",
    ),
    "webhook": About(
        "receive S3 event notifications over HTTP(S)",
        "Receive S3 event notifications over HTTP (Ceph RGW, MinIO, AWS through SNS) and append each to the "
        "configured stream or list, answering 200 only once Redis holds it, so that the store sends again "
        "what was not taken. Speaks HTTPS with [webhook] tls_cert and tls_key. Runs until SIGTERM or SIGINT.",
        ((EXIT_OK, "stopped by SIGTERM or SIGINT"), _CONFIG_WRONG),
        "docs/announcing.md",
    ),
    "echo_s3s3_ini_template": About(
        "print the s3s3.ini template",
        "Print the documented s3s3.ini template: every section, the common options with their defaults, and "
        "placeholders such as {YOUR_S3_BUCKET} to fill in (a value still holding one is an error).",
        ((EXIT_OK, "printed"), (EXIT_USAGE, "an argument it does not take")),
        "docs/configuration.md",
    ),
    "echo_s3s3_supervisord_conf": About(
        "print a supervisord program file for the listener",
        "Print a supervisord program file for the listener, to save as /etc/supervisor/conf.d/s3s3.conf: the "
        "listener is started again when it dies, and given 600 s to finish its copies when stopped.",
        ((EXIT_OK, "printed"), (EXIT_USAGE, "an argument it does not take")),
        "docs/deploy.md",
    ),
}  # fmt: skip


def main(argv: Sequence[str] | None = None, *, script: str = "s3s3") -> int:
    """`s3s3 SUBCOMMAND ...`, or the console script `script` (s3s3listen, s3s3bucket); returns the exit code."""
    keep_big_buffers_off_the_heap()
    parser = script_parser(script)
    args = parser.parse_args(argv, argparse.Namespace(config=None, verbose=False, log_level=None, log_format=None))
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _setup_logging(args, None)
    command: Command = args.command
    try:
        return command(args)
    except S3S3Error as e:
        for line in str(e).splitlines():  # a ConfigError has a line per problem in the file
            print(f"s3s3: error: {line}", file=sys.stderr)
        return EXIT_USAGE


def listen_main(argv: Sequence[str] | None = None) -> int:
    """The `s3s3listen` script."""
    if argv is None:
        gc.freeze()  # what the imports made lives as long as the process: no garbage collection pass need visit it
    return main(argv, script="s3s3listen")


def bucket_main(argv: Sequence[str] | None = None) -> int:
    """The `s3s3bucket` script."""
    if argv is not None:
        return main(argv, script="s3s3bucket")
    gc.freeze()
    code = main(None, script="s3s3bucket")
    # Everything is done and written (ledger flushed, lock released, summary
    # printed): exit without tearing down the interpreter's objects one by one,
    # a tenth of a second of a run with nothing to do.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def ini_template_main(argv: Sequence[str] | None = None) -> int:
    """The `echo_s3s3_ini_template` script: print the documented configuration template."""
    return _echo("echo_s3s3_ini_template", argv)


def supervisord_conf_main(argv: Sequence[str] | None = None) -> int:
    """The `echo_s3s3_supervisord_conf` script: print a supervisord program file for the listener."""
    return _echo("echo_s3s3_supervisord_conf", argv)


def _echo(script: str, argv: Sequence[str] | None) -> int:
    script_parser(script).parse_args(argv)
    from importlib import resources

    sys.stdout.write(resources.files("s3s3.data").joinpath(ECHOES[script]).read_text())
    return EXIT_OK


def _load(args: argparse.Namespace) -> Config:
    """Load the configuration, then log as it (or the command line, which wins) says."""
    config = load(args.config)
    _setup_logging(args, config)
    return config


def _setup_logging(args: argparse.Namespace, config: Config | None) -> None:
    level = args.log_level or ("DEBUG" if args.verbose else None) or (config.logging.level if config else "INFO")
    fmt = args.log_format or (config.logging.format if config else "text")
    logs.setup(level, fmt)


def _limits(args: argparse.Namespace, config: Config) -> Limits:
    """The process's budgets; its cap on bytes sent per second is --bwlimit, else [pubsub] bwlimit."""
    rate = args.bwlimit if args.bwlimit is not None else config.pubsub.bwlimit
    if rate:
        logging.getLogger("s3s3.copy.limits").info("Sending at most %s bytes per second", f"{rate:,}")
    return Limits.for_process(rate)


def _split(args: argparse.Namespace, client: BucketClient) -> int:
    """--split N: the ranges go on Redis as tasks; nothing is listed key by key."""
    try:
        ident, parts = client.split(args.split, args.prefix, force=args.force)
    except SplitOpen as e:
        print(f"s3s3bucket: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(f"split {ident}: {len(parts)} range(s) on {client.sync_of().tasks}; run s3s3bucket --work to sync them")
    for index, part in enumerate(parts):
        print(f"  range {index + 1}: {part.describe()}")
    return EXIT_OK


def _work(args: argparse.Namespace, client: BucketClient, options: SyncOptions, stop: threading.Event) -> int:
    """--work: sync ranges of the last --split until none is left; exit 1 if any of them failed keys."""
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    worked = client.work(options, stop=stop, consumer=consumer)
    print(f"s3s3bucket --work: synced {worked.ranges} range(s)" + ("" if worked.ok else ", some with failures"))
    return EXIT_OK if worked.ok and not stop.is_set() else EXIT_FAILED


def cmd_listen(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.consumer is not None:
        config = replace(config, pubsub=replace(config.pubsub, consumer=args.consumer))
    return ListenClient(config, workers=args.workers, limits=_limits(args, config)).listen()


def cmd_bucket(args: argparse.Namespace) -> int:
    config = _load(args)
    limits = _limits(args, config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while True:
        code = bucket_once(args, BucketClient(config, workers=args.workers, limits=limits), stop)
        if not args.every or stop.wait(args.every):
            return code


def bucket_once(args: argparse.Namespace, client: BucketClient, stop: threading.Event) -> int:
    """One bucket sync of `s3s3bucket ARGS`: run it, print its summary, write its metrics file; return the exit code."""
    config = client.config
    options = SyncOptions(
        keys=KeyFilter(prefix=args.prefix, include=args.include, exclude=args.exclude),
        dry_run=args.dry_run,
        delete=args.delete,
        max_delete=args.max_delete,
        verify_md5=args.verify_md5,
        workers=args.workers or config.pubsub.workers,
        retry=client.retry,
        abort_uploads_older_than=args.abort_incomplete_uploads,
        ledger_days=config.pubsub.ledger_days,
        limits=client.limits,
    )
    if args.split:
        return _split(args, client)
    if args.work:
        return _work(args, client, options, stop)
    try:
        with Progress(enabled=None if not args.json else False) as progress:
            summary = client.duplicate_bucket(
                options=options, dest_names=args.dest, reverse=args.reverse, enqueue=args.enqueue,
                shard=args.shard, stop=stop, progress=progress, at=args.at,
            )
    except LockHeld as e:
        print(f"s3s3bucket: {e}; not starting another")
        return EXIT_OK
    except ListingOrderError as e:
        print(f"s3s3: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    if args.metrics_file:
        from s3s3.sync.summary import write_textfile

        write_textfile(args.metrics_file, summary)
    if args.json:
        print(json.dumps(summary.as_dict(), sort_keys=True))
    else:
        print(summary.line())
        for dest, key, error in summary.failures:
            print(f"failed: {key!r} to {dest}: {error}")
        for error in summary.errors:
            print(f"error: {error}")
    return EXIT_OK if summary.ok else EXIT_FAILED


def cmd_audit(args: argparse.Namespace) -> int:
    from s3s3.audit import Report, write_textfile

    config = _load(args)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    client = AuditClient(config, workers=args.workers, limits=_limits(args, config))
    with Report(args.report, args.combined) as report:
        summary = client.audit(report, _audit_options(args, client), dest_names=args.dest, shard=args.shard,
                               stop=stop)  # fmt: skip
    code = summary.exit_code(allow_unproven=args.allow_unproven)
    if args.metrics_file:
        write_textfile(args.metrics_file, summary, ok=code == EXIT_OK)
    print(json.dumps(summary.as_dict(), sort_keys=True) if args.json else summary.line())
    for error in summary.errors if not args.json else ():
        print(f"error: {error}")
    return code


def _audit_options(args: argparse.Namespace, client: AuditClient) -> AuditOptions:
    """What `s3s3 audit ARGS` looks at; the seed of a read-back is said, so that it can be given again."""
    from s3s3.audit import AuditOptions
    from s3s3.audit.fixity import new_seed

    fraction = 1.0 if args.read_all else args.read_sample or 0.0
    seed = args.seed if args.seed is not None else new_seed()
    if 0.0 < fraction < 1.0:
        logging.getLogger("s3s3.audit").info("Reading back %.2f%% of the keys on both sides, picked by seed %d "
                                             "(--seed %d picks the same keys)", fraction * 100, seed, seed)  # fmt: skip
    workers = args.workers or client.config.pubsub.workers
    return AuditOptions(KeyFilter(prefix=args.prefix), fraction, seed, workers=workers, limits=client.limits)


def cmd_publish(args: argparse.Namespace) -> int:
    config = _load(args)
    pubsub = config.pubsub
    unheard = False
    try:
        client = connect_redis(pubsub)
        for key in args.keys:
            reached = publish(client, pubsub.mode, pubsub.target, key.encode("utf-8"), replicas=pubsub.wait_replicas)
            if pubsub.mode is not Mode.PUBSUB:
                held = f", held by {pubsub.wait_replicas} replica(s)" if pubsub.wait_replicas else ""
                print(f"published {key!r} on {pubsub.mode} {pubsub.target!r}{held}")
                continue
            print(f"published {key!r} on {pubsub.target!r} to {reached} listener(s)")
            # A Redis Cluster counts the subscribers of the node it was sent to only: 0 says nothing there.
            if not reached and not pubsub.cluster:
                unheard = True
                print(f"s3s3: warning: {key!r} was received by no one, so it is lost: start a listener, or use "
                      "[pubsub] mode = stream or list, which keep keys until a listener takes them",
                      file=sys.stderr)  # fmt: skip
    except RedisError as e:
        print(f"s3s3: error: cannot publish to {pubsub.safe_url}: {e}", file=sys.stderr)
        return EXIT_FAILED
    except S3S3Error as e:  # NotReplicated: on the master, but a failover now would lose it: not done
        print(f"s3s3: error: {key!r} is not replicated: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_UNHEARD if unheard else EXIT_OK


def cmd_failed(args: argparse.Namespace) -> int:
    config = _load(args)
    try:
        entries = list(deadletter.failures(connect_redis(config.pubsub), args.limit))
    except RedisError as e:
        print(f"s3s3: error: cannot read {names.DEADLETTER} at {config.pubsub.safe_url}: {e}", file=sys.stderr)
        return EXIT_FAILED
    for failure in entries:
        print(failure.line())
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} in {names.DEADLETTER}", file=sys.stderr)
    return EXIT_OK


def cmd_retry_failed(args: argparse.Namespace) -> int:
    config = _load(args)
    pubsub = config.pubsub
    try:
        client = connect_redis(pubsub)
        done, left = deadletter.retry(
            client, lambda key: publish(client, pubsub.mode, pubsub.target, key.encode("utf-8")) > 0
        )
    except RedisError as e:
        print(f"s3s3: error: cannot retry from {config.pubsub.safe_url}: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(f"announced {done} failed key(s) again on {pubsub.mode} {pubsub.target!r}; {left} could not be")
    return EXIT_OK if not left else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    config = _load(args)
    from s3s3 import status

    if args.sync:
        if args.key is not None:
            print("s3s3: error: --sync goes with status alone, not with a KEY", file=sys.stderr)
            return EXIT_USAGE
        from s3s3.sync import fleet

        buckets = BucketClient(config)
        sync = buckets.sync_of()
        try:
            status.sync_overview(fleet.summary(connect_redis(config.pubsub), sync), sync.tasks, as_json=args.json)
        except RedisError as e:
            print(f"s3s3: error: cannot read the sync from {config.pubsub.safe_url}: {e}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    if args.key is not None:
        if args.json:
            print("s3s3: error: --json goes with status alone, not with a KEY", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK if status.show(config, args.key, check_timeout=args.connect_timeout) else EXIT_FAILED
    try:
        status.overview(config, connect_redis(config.pubsub), as_json=args.json)
    except RedisError as e:
        print(f"s3s3: error: cannot read the backlog from {config.pubsub.safe_url}: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_webhook(args: argparse.Namespace) -> int:
    from s3s3.listen.webhook import WebhookServer, tls_context

    config = _load(args)
    pubsub, hook = config.pubsub, config.webhook
    tls = None
    if hook.tls_cert and hook.tls_key:
        try:
            tls = tls_context(hook.tls_cert, hook.tls_key)
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            raise ConfigError(f"{config.path}: [webhook] tls_cert: with tls_key, not a PEM certificate and its "
                              f"unencrypted key: {e}") from e  # fmt: skip
    server = WebhookServer((hook.bind, hook.port), connect_redis(pubsub), pubsub.mode, pubsub.target,
                           config.source.bucket, hook.token, tls=tls, replicas=pubsub.wait_replicas)  # fmt: skip
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    logging.getLogger("s3s3.listen.webhook").info(
        "Webhook listening on %s://%s:%d, handing notifications to %s", server.scheme, *server.server_address[:2],
        describe(pubsub),
    )
    stop.wait()
    server.shutdown()
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    print(f"{config.path}: configuration is valid", flush=True)
    results = [_check_endpoint(ep, args.connect_timeout) for ep in (config.source, *config.dests)]
    try:
        logger.debug("Connecting to Redis at %s", config.pubsub.safe_url)
        connect_redis(config.pubsub, socket_connect_timeout=args.connect_timeout).ping()
        print(f"[pubsub] {config.pubsub.safe_url}: ok")
        results.append(True)
    except RedisError as e:
        print(f"[pubsub] {config.pubsub.safe_url}: {e}")
        results.append(False)
    return EXIT_OK if all(results) else EXIT_FAILED


def cmd_doctor(args: argparse.Namespace) -> int:
    from s3s3 import doctor

    return doctor.run(_load(args), args.sections, check_timeout=args.connect_timeout)


def _check_endpoint(endpoint: Endpoint, check_timeout: float) -> bool:
    where = endpoint.endpoint_url or "AWS"
    logger.debug("Connecting to [%s] at %s to list a page of bucket %r", endpoint.name, where, endpoint.bucket)
    try:
        open_store(endpoint, check_timeout=check_timeout).list_page(endpoint.prefix)
    except StoreError as e:
        print(f"[{endpoint.name}] bucket {endpoint.bucket!r} at {where}: {one_line(e)}", flush=True)
        return False
    print(f"[{endpoint.name}] bucket {endpoint.bucket!r} at {where}: ok", flush=True)
    return True


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's own default would overwrite `s3s3 --config FILE listen`; main() sets the defaults.
    common.add_argument("--config", "-c", metavar="FILE", default=argparse.SUPPRESS, help="configuration file "
                        "(default: $S3S3_CONFIG, ./s3s3.ini, /usr/local/etc/s3s3.ini)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug detail")
    common.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS, type=str.lower,
                        help="debug, info, warning or error (default: [logging] level, info)")
    common.add_argument("--log-format", choices=LOG_FORMATS, default=argparse.SUPPRESS,
                        help="text lines or json lines (default: [logging] format, text)")
    common.add_argument("--version", action="version", version=f"s3s3 {__version__}")

    parser = argparse.ArgumentParser(prog="s3s3", parents=[common], description="Replicate S3 objects.",
                                     epilog="Each command's --help gives its exit codes and its page in docs/.")
    sub = parser.add_subparsers(title="commands")

    listen = _subcommand(sub, "listen", common)
    listen.add_argument("--workers", type=_positive, help="copies at once (default: [pubsub] workers)")
    listen.add_argument("--bwlimit", type=_rate, metavar="RATE",
                        help="bytes per second sent, all copies together: 20MiB, 500KiB, 0 for none "
                        "(default: [pubsub] bwlimit)")
    listen.add_argument("--consumer", type=_name, metavar="NAME",
                        help="this listener's name in the stream's group, or its processing list's in list mode: "
                        "distinct per listener, the same across its restarts (default: [pubsub] consumer)")
    listen.set_defaults(command=cmd_listen)

    bucket = _subcommand(sub, "bucket", common)
    bucket.add_argument("--workers", type=_positive, help="copies at once (default: [pubsub] workers)")
    bucket.add_argument("--bwlimit", type=_rate, metavar="RATE",
                        help="bytes per second sent, all copies together: 20MiB, 500KiB, 0 for none "
                        "(default: [pubsub] bwlimit)")
    bucket.add_argument("--verify-md5", action="store_true",
                        help="prove every destination object's MD5 against the source's, reading where needed")
    bucket.add_argument("--dry-run", action="store_true", help="print what would be copied or deleted; change nothing")
    bucket.add_argument("--delete", action="store_true", help="delete destination keys the source no longer has")
    bucket.add_argument("--max-delete", type=int, default=1000, metavar="N",
                        help="refuse to delete more than N keys per destination (default 1000; 0: no limit)")
    bucket.add_argument("--prefix", default="", help="only keys under this prefix (below the configured ones)")
    bucket.add_argument("--include", action="append", default=[], metavar="GLOB", help="only matching keys (repeat)")
    bucket.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip matching keys (repeat)")
    bucket.add_argument("--dest", action="append", default=[], metavar="NAME", help="only this destination section")
    bucket.add_argument("--reverse", action="store_true",
                        help="restore: copy from the --dest destination back to the source (never deletes there)")
    bucket.add_argument("--at", type=_time, metavar="TIME",
                        help="with --reverse: restore the source as it was at TIME (ISO 8601, or Unix seconds), from "
                        "the history of a destination with versions = all; --delete deletes what did not exist then")
    bucket.add_argument("--enqueue", action="store_true",
                        help="announce needed keys on the configured stream or list instead of copying them")
    bucket.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                        help="only the I-th of N key ranges (0-based), listed alone on every side")
    fleet = bucket.add_mutually_exclusive_group()
    fleet.add_argument("--split", type=_positive, metavar="N",
                       help="put N key-range tasks on Redis for --work processes, and exit")
    fleet.add_argument("--work", action="store_true",
                       help="sync the ranges of the last --split, with any number of others, until none is left")
    bucket.add_argument("--force", action="store_true", help="--split even while an earlier split's tasks are open")
    bucket.add_argument("--abort-incomplete-uploads", type=_age, metavar="AGE",
                        help="abort multipart uploads at each destination begun over AGE ago (90s, 30m, 24h, 7d) "
                        "for keys the source holds")
    bucket.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    bucket.add_argument("--metrics-file", metavar="PATH", help="write the summary as a Prometheus textfile")
    bucket.add_argument("--every", type=_positive, metavar="SECONDS", help="run again every SECONDS until stopped")
    bucket.set_defaults(command=cmd_bucket)

    audit = _subcommand(sub, "audit", common)
    audit.add_argument("--dest", action="append", default=[], metavar="NAME", help="only this destination section")
    audit.add_argument("--prefix", default="", help="only keys under this prefix (below the configured ones)")
    audit.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                       help="only the I-th of N key ranges (0-based), as s3s3 bucket --shard")
    audit.add_argument("--report", metavar="FILE", help="write a JSON line per key and destination, then the summary")
    audit.add_argument("--combined", metavar="FILE",
                       help="write rclone check --combined lines (= * + - !); {dest} in FILE: one file per destination")
    reads = audit.add_mutually_exclusive_group()
    reads.add_argument("--read-sample", type=_fraction, metavar="FRACTION",
                       help="also read back this fraction of the keys on both sides and compare MD5s (0.01 or 1%%)")
    reads.add_argument("--read-all", action="store_true", help="read back every key on both sides")
    audit.add_argument("--seed", type=int, metavar="N", help="read back the keys the run with seed N picked")
    audit.add_argument("--allow-unproven", action="store_true",
                       help="exit 0 with keys whose sizes agree and nothing proves the bytes")
    audit.add_argument("--workers", type=_positive, help="HEADs and reads at once (default: [pubsub] workers)")
    audit.add_argument("--bwlimit", type=_rate, metavar="RATE",
                       help="bytes per second read back: 20MiB, 500KiB, 0 for none (default: [pubsub] bwlimit)")
    audit.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    audit.add_argument("--metrics-file", metavar="PATH", help="write the summary as a Prometheus textfile")
    audit.set_defaults(command=cmd_audit)

    publish = _subcommand(sub, "publish", common)
    publish.add_argument("keys", nargs="+", metavar="KEY")
    publish.set_defaults(command=cmd_publish)

    checking = argparse.ArgumentParser(add_help=False)
    checking.add_argument("--connect-timeout", type=_seconds, default=CHECK_TIMEOUT, metavar="SECONDS",
                          help=f"give up on an endpoint that has not accepted a connection after SECONDS "
                          f"(default {CHECK_TIMEOUT:g}); each request is tried once")

    check = _subcommand(sub, "check-config", common, checking)
    check.set_defaults(command=cmd_check_config)

    doctor = _subcommand(sub, "doctor", common, checking)
    doctor.add_argument("sections", nargs="*", metavar="SECTION", help="sections to probe (default: all)")
    doctor.set_defaults(command=cmd_doctor)

    failed = _subcommand(sub, "failed", common)
    failed.add_argument("--limit", type=_positive, help="show at most this many (oldest first)")
    failed.set_defaults(command=cmd_failed)

    retry = _subcommand(sub, "retry-failed", common)
    retry.set_defaults(command=cmd_retry_failed)

    show = _subcommand(sub, "status", common, checking)
    show.add_argument("key", metavar="KEY", nargs="?", help="show this key at the source and every destination")
    show.add_argument("--json", action="store_true", help="print it as JSON")
    show.add_argument("--sync", action="store_true", help="the last s3s3bucket --split sync: ranges done and totals")
    show.set_defaults(command=cmd_status)

    webhook = _subcommand(sub, "webhook", common)
    webhook.set_defaults(command=cmd_webhook)
    return parser


def _subcommand(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, *parents: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    return sub.add_parser(name, parents=list(parents), help=ABOUT[name].summary, **ABOUT[name].keywords())


def script_parser(script: str = "s3s3") -> argparse.ArgumentParser:
    """The parser of a console script, under its own name: s3s3's, a subcommand's (SCRIPTS), or an echo's."""
    if script in ECHOES:
        # The echo scripts take no arguments, but --help and --version must not print the file.
        echo = argparse.ArgumentParser(prog=script, **ABOUT[script].keywords())
        echo.add_argument("--version", action="version", version=f"s3s3 {__version__}")
        return echo
    parser = _parser()
    if script == "s3s3":
        return parser
    subcommand = SCRIPTS[script]
    [found] = (a.choices[subcommand] for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert isinstance(found, argparse.ArgumentParser)
    found.prog = script  # `usage: s3s3listen ...`, and its errors under that name
    return found


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and 0 <= int(index) < int(count)):
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N with 0 <= I < N (e.g. 0/4)")
    return int(index), int(count)


def _time(text: str) -> datetime:
    from s3s3.sync.restore import parse_time

    try:
        return parse_time(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _fraction(text: str) -> float:
    number, percent = (text[:-1], True) if text.endswith("%") else (text, False)
    try:
        value = float(number) / (100 if percent else 1)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction of the keys above 0 and up to 1 (0.01, 1%)")
    return value


def _rate(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate in bytes per second (examples: 20MiB, 500KiB)") from e


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _age(text: str) -> float:
    number, unit = (text[:-1], text[-1]) if text[-1:].lower() in _AGE_UNITS else (text, "s")
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age (examples: 3600, 90s, 30m, 24h, 7d)")
    return value * _AGE_UNITS[unit.lower()]


def _name(text: str) -> str:
    if not text.strip() or text != text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a name (no blanks around it, not empty)")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in (0, 3600]")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


