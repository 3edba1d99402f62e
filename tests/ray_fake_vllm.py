"""Stands in for ``vllm serve`` behind ``ray_bootstrap.sh head -- ...`` in the Ray tests.

It does what the bootstrap promises vLLM: it joins the Ray cluster through ``RAY_ADDRESS``, records what
it sees (its argv, its PID, its environment, the environment Ray gives worker processes on every node) to
``--record``, then either exits 0 or, with ``--watch``, behaves like vLLM's Ray executor: it keeps serving
only while the group keeps that many live nodes, and exits 1 when a node is lost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

NODE_ENV = ("VLLM_HOST_IP", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME")
SEEN_ENV = (*NODE_ENV, "RAY_ADDRESS", "HF_TOKEN", "VLLM_API_KEY")
WATCH_PERIOD_SECONDS = 0.5


@ray.remote(num_cpus=0)
def node_env() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in NODE_ENV}


def live_nodes() -> list[dict]:
    return [node for node in ray.nodes() if node["Alive"]]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--watch", type=int, help="exit 1 once fewer than this many nodes are alive")
    args, _ = parser.parse_known_args()

    ray.init(logging_level="ERROR", log_to_driver=False)
    nodes = live_nodes()
    on_each_node = [
        node_env.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote()
        for node in nodes
    ]
    record = {
        "argv": sys.argv[1:],
        "pid": os.getpid(),
        "env": {name: os.environ.get(name) for name in SEEN_ENV},
        "nodes": len(nodes),
        "node_env": ray.get(on_each_node, timeout=60),
    }
    partial = args.record.with_suffix(".partial")
    partial.write_text(json.dumps(record))
    partial.rename(args.record)  # the test never reads half a record

    while args.watch is not None:
        alive = len(live_nodes())
        if alive < args.watch:
            print(f"fake vllm: lost a node ({alive}/{args.watch} alive); exiting like vLLM would", flush=True)
            return 1
        time.sleep(WATCH_PERIOD_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
