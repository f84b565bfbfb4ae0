"""Compile and deploy the round contract; write the deployment record that agents read.

    python deploy.py [--rpc-url URL] [--config config/local.toml] [--out build/deployment.json]

A thin command over :func:`fedtss.chain.deploy.deploy` (``fedtss deploy`` is the same). The
deployer key comes from the environment variable FEDTSS_PRIVATE_KEY or from an encrypted
keystore named in the config (password from FEDTSS_KEYSTORE_PASSWORD, or asked), never both;
or, on a local anvil only (chain id 31337), from the config's dev_private_key. It is never a
command-line argument. Starts nothing: the node must already run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fedtss.chain.deploy import (
    ANVIL_CHAIN_ID,
    DEFAULT_CONFIG,
    DEFAULT_OUT,
    DEFAULT_RPC_URL,
    deploy,
    resolve_deployer,
)
from fedtss.errors import FedTSSError

__all__ = ["ANVIL_CHAIN_ID", "deploy", "main", "resolve_deployer"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpc-url", default=DEFAULT_RPC_URL, help=f"JSON-RPC node (default {DEFAULT_RPC_URL})")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"default {DEFAULT_CONFIG}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"deployment record (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        deployment = deploy(args.rpc_url, args.config, args.out, os.environ,
                            warn=lambda message: print(f"deploy.py: warning: {message}", file=sys.stderr))
    except FedTSSError as exc:
        print(f"deploy.py: {exc}", file=sys.stderr)
        return 1
    print(deployment.address)  # stdout holds the address alone, for scripts
    print(f"FedTSSRounds on chain {deployment.chain_id}, block {deployment.deploy_block}; record {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
