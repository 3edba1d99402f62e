"""The vLLM containers' logs of a deployed stack: the ``sky serve logs`` of these stacks.

    python -m tools.logs --stack gcp-h100 [--replica ID|NAME] [--follow] [--since 1h]

Reads where each platform keeps them: Cloud Logging (GCP: docker's gcplogs driver), the stack's CloudWatch
Logs group (AWS: docker's awslogs driver, a stream per instance), the pods' logs (Kubernetes). The stack's
``replicaSource`` output says where; `python -m tools.status --stack NAME` lists the replica IDs. With
several machines, each line starts with ``(ID NAME)``. Needs the platform's client library
(pip install -r requirements.txt -r requirements-tools.txt) and your credentials for it.

Exit codes:
  0  done (or --follow ended with Ctrl-C)
  1  the platform could not be read
  2  usage or configuration error: no pulumi CLI, no such replica, a stack without replicaSource
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TextIO

from components.observe import ListError, LogLine, LogQuery, Replica, ReplicaSource
from tools.stack import ConfigError, list_replicas, replica_source, stack_outputs, status_module, tool_parser

EXIT_OK, EXIT_UNREADABLE, EXIT_CONFIG = 0, 1, 2
#: Where the replicas' logs are is only in the stack's ``replicaSource`` output: no endpoint leads there.
WITHOUT_CLI = "which hold where the replicas' logs are (replicaSource): the logs cannot be found without it"
SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The furthest back --since reaches: a year, past every platform's default log retention (Cloud Logging's
#: _Default bucket keeps 30 days), and within what a datetime can subtract.
MAX_SINCE = timedelta(days=365)


def parse_since(value: str) -> timedelta:
    """'90s', '30m', '2h', '1d': how far back to read, at most ``MAX_SINCE``."""
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    seconds = int(match.group(1)) * SINCE_UNITS[match.group(2)] if match is not None else 0
    if not 0 < seconds <= MAX_SINCE.total_seconds():
        raise argparse.ArgumentTypeError(
            f"invalid duration {value!r}: a positive number and s, m, h or d (30m), at most {MAX_SINCE.days}d"
        )
    return timedelta(seconds=seconds)


def choose(replicas: Sequence[Replica], wanted: str | None) -> list[Replica]:
    """Every machine of the replica ``wanted`` (its ID, or a machine or pod name), or every machine."""
    if wanted is None:
        return list(replicas)
    chosen = [replica for replica in replicas if wanted in (replica.id, replica.name)]
    if not chosen:
        known = ", ".join(f"{replica.id} ({replica.name})" for replica in replicas) or "none running"
        raise ConfigError(f"no replica {wanted!r}: replicas are {known}")
    return chosen


def printer(out: TextIO, several: bool) -> Callable[[LogLine], None]:
    def emit(line: LogLine) -> None:
        prefix = f"({line.replica.id} {line.replica.name}) " if several else ""
        print(f"{prefix}{line.text}", file=out, flush=True)

    return emit


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = tool_parser("python -m tools.logs", __doc__)
    parser.add_argument("--stack", required=True, help="the stack whose replicas' logs to read")
    parser.add_argument(
        "--replica", help="one replica: its ID as tools.status prints it, or a machine/pod name"
    )
    parser.add_argument("--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    parser.add_argument(
        "--since",
        type=parse_since,
        default=timedelta(hours=1),
        help="how far back, e.g. 30m, 2h (default 1h)",
    )
    return parser.parse_args(argv)


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] = os.environ,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    poll_seconds: float = 5.0,
) -> int:
    args = parse_args(argv)
    try:
        outputs = stack_outputs(args.stack, env, show_secrets=False, without_cli=WITHOUT_CLI)
        source = replica_source(args.stack, outputs)
        if source is None:
            raise ConfigError(
                f"stack {args.stack} has no replicaSource output: run `pulumi up --stack {args.stack}`"
            )
        chosen = choose(list_replicas(source), args.replica)
    except ConfigError as error:
        print(f"error: {error}", file=err)
        return EXIT_CONFIG
    except ListError as error:
        print(f"error: {error}", file=err)
        return EXIT_UNREADABLE
    return read(source, chosen, args, out, err, poll_seconds)


def read(
    source: ReplicaSource,
    chosen: list[Replica],
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    poll_seconds: float,
) -> int:
    query = LogQuery(
        replicas=chosen, since=datetime.now(UTC) - args.since, follow=args.follow, poll_seconds=poll_seconds
    )
    platform = status_module(source)
    try:
        platform.read_logs(source, query, printer(out, several=len(chosen) > 1))
    except ListError as error:
        print(f"error: {error}", file=err)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
