"""The command line: `s3s3 listen|bucket|publish|check-config`, and the original's scripts.

`s3s3listen` and `s3s3bucket` are the same functions as `s3s3 listen` and
`s3s3 bucket`. Each command loads the configuration, sets up logging, builds
the clients, calls the library and maps what happened to an exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from importlib import resources

from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError

from s3s3 import __version__, logs
from s3s3.client import BucketClient, ListenClient
from s3s3.config import Endpoint, load
from s3s3.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, S3S3Error
from s3s3.listen import connect_redis
from s3s3.s3 import list_objects, open_bucket

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """`s3s3 SUBCOMMAND ...`; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv, argparse.Namespace(config=None, verbose=False))
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    logs.setup(verbose=args.verbose)
    try:
        return args.command(args)
    except S3S3Error as e:
        print(f"s3s3: error: {e}", file=sys.stderr)
        return EXIT_USAGE


def listen_main(argv: Sequence[str] | None = None) -> int:
    """The `s3s3listen` script."""
    return main(["listen", *(sys.argv[1:] if argv is None else argv)])


def bucket_main(argv: Sequence[str] | None = None) -> int:
    """The `s3s3bucket` script."""
    return main(["bucket", *(sys.argv[1:] if argv is None else argv)])


def ini_template_main(argv: Sequence[str] | None = None) -> int:
    """The `echo_s3s3_ini_template` script: print the documented configuration template."""
    _echo_parser("echo_s3s3_ini_template", "Print the s3s3.ini template.").parse_args(argv)
    sys.stdout.write(resources.files("s3s3.data").joinpath("s3s3.ini.dist").read_text())
    return EXIT_OK


def supervisord_conf_main(argv: Sequence[str] | None = None) -> int:
    """The `echo_s3s3_supervisord_conf` script: print a supervisord program file for the listener."""
    _echo_parser("echo_s3s3_supervisord_conf", "Print a supervisord program file.").parse_args(argv)
    sys.stdout.write(resources.files("s3s3.data").joinpath("supervisord.conf").read_text())
    return EXIT_OK


def cmd_listen(args: argparse.Namespace) -> int:
    config = load(args.config)
    return ListenClient(config, workers=args.workers).listen()


def cmd_bucket(args: argparse.Namespace) -> int:
    config = load(args.config)
    summary = BucketClient(config, workers=args.workers).duplicate_bucket(verify_md5=args.verify_md5)
    if args.json:
        print(json.dumps(summary.as_dict(), sort_keys=True))
    else:
        print(summary.line())
        for dest, key, error in summary.failures:
            print(f"failed: {key!r} to {dest}: {error}")
    return EXIT_FAILED if summary.failed else EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    config = load(args.config)
    client = connect_redis(config.pubsub.url)
    try:
        for key in args.keys:
            receivers = client.publish(config.pubsub.channel, key.encode("utf-8"))
            print(f"published {key!r} on {config.pubsub.channel!r} to {receivers} listener(s)")
    except RedisError as e:
        print(f"s3s3: error: cannot publish to {config.pubsub.safe_url}: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load(args.config)
    print(f"{config.path}: configuration is valid")
    results = [_check_endpoint(ep) for ep in (config.source, *config.dests)]
    try:
        connect_redis(config.pubsub.url).ping()
        print(f"[pubsub] {config.pubsub.safe_url}: ok")
        results.append(True)
    except RedisError as e:
        print(f"[pubsub] {config.pubsub.safe_url}: {e}")
        results.append(False)
    return EXIT_OK if all(results) else EXIT_FAILED


def _check_endpoint(endpoint: Endpoint) -> bool:
    where = endpoint.endpoint_url or "AWS"
    try:
        next(list_objects(open_bucket(endpoint), endpoint.prefix), None)
    except (BotoCoreError, ClientError) as e:
        print(f"[{endpoint.name}] bucket {endpoint.bucket!r} at {where}: {' '.join(str(e).split())}")
        return False
    print(f"[{endpoint.name}] bucket {endpoint.bucket!r} at {where}: ok")
    return True


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's own default would overwrite `s3s3 --config FILE listen`; main() sets the defaults.
    common.add_argument("--config", "-c", metavar="FILE", default=argparse.SUPPRESS, help="configuration file "
                        "(default: $S3S3_CONFIG, ./s3s3.ini, /usr/local/etc/s3s3.ini)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug detail")
    common.add_argument("--version", action="version", version=f"s3s3 {__version__}")

    parser = argparse.ArgumentParser(prog="s3s3", parents=[common], description="Replicate S3 objects.")
    sub = parser.add_subparsers(title="commands")

    listen = sub.add_parser("listen", parents=[common], help="copy each key announced on Redis")
    listen.add_argument("--workers", type=_positive, help="copies at once (default: [pubsub] workers)")
    listen.set_defaults(command=cmd_listen)

    bucket = sub.add_parser("bucket", parents=[common], help="copy every missing or changed key")
    bucket.add_argument("--workers", type=_positive, help="copies at once (default: [pubsub] workers)")
    bucket.add_argument("--verify-md5", action="store_true", help="prove each copy by its MD5")
    bucket.add_argument("--json", action="store_true", help="print the summary as JSON")
    bucket.set_defaults(command=cmd_bucket)

    publish = sub.add_parser("publish", parents=[common], help="announce keys on the configured channel")
    publish.add_argument("keys", nargs="+", metavar="KEY")
    publish.set_defaults(command=cmd_publish)

    check = sub.add_parser("check-config", parents=[common], help="validate the file and try every connection")
    check.set_defaults(command=cmd_check_config)
    return parser


def _echo_parser(prog: str, description: str) -> argparse.ArgumentParser:
    # The echo scripts take no arguments, but --help and --version must not print the file.
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"s3s3 {__version__}")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


