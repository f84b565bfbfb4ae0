"""Compile and deploy the round contract, and write the deployment record agents read.

:func:`deploy` is what ``python deploy.py``, ``fedtss deploy`` and ``fedtss demo`` run. The
configuration is validated before anything is sent (a bad value raises a ConfigError naming
the field). The deployer key comes from the environment variable FEDTSS_PRIVATE_KEY or from an
encrypted keystore named in the config (password from FEDTSS_KEYSTORE_PASSWORD, or asked),
never both; or, on a local anvil only (chain id 31337), from the config's dev_private_key.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from eth_account.signers.local import LocalAccount

from fedtss.chain.compile import compile_contracts
from fedtss.chain.config import DeployerSettings, committee_warning, load_config, load_model_terms
from fedtss.chain.contract import Deployment, connect, deploy_rounds, transaction_hash
from fedtss.chain.keys import DEFAULT_KEY_ENV, DEFAULT_PASSWORD_ENV, account_from_key, load_account
from fedtss.errors import ConfigError
from fedtss.quantize import QuantizationConfig, check_capacity

__all__ = ["ANVIL_CHAIN_ID", "DEFAULT_CONFIG", "DEFAULT_OUT", "DEFAULT_RPC_URL", "deploy", "resolve_deployer"]

DEFAULT_RPC_URL = "http://127.0.0.1:8545"
DEFAULT_CONFIG = Path("config/local.toml")
DEFAULT_OUT = Path("build/deployment.json")
ANVIL_CHAIN_ID = 31337


def resolve_deployer(
    settings: DeployerSettings,
    chain_id: int,
    environ: Mapping[str, str],
    *,
    ask_password: Callable[[str], str] = getpass.getpass,
) -> LocalAccount:
    """The deployer account: ``FEDTSS_PRIVATE_KEY`` or the config's keystore, else (anvil only)
    the config's dev key.

    The first two go through :func:`fedtss.chain.keys.load_account`, as every agent's key
    does, so setting both is refused rather than one silently winning. A keystore's password
    is ``FEDTSS_KEYSTORE_PASSWORD``, or asked with ``ask_password`` when that is unset.
    """
    key_in_environ = bool(environ.get(DEFAULT_KEY_ENV))
    if settings.keystore is not None or key_in_environ:
        if settings.keystore is not None and not key_in_environ and not environ.get(DEFAULT_PASSWORD_ENV):
            environ = {**environ, DEFAULT_PASSWORD_ENV: ask_password("keystore password: ")}
        return load_account(keystore=settings.keystore, environ=environ)
    if settings.dev_private_key is not None:
        if chain_id != ANVIL_CHAIN_ID:
            raise ConfigError(
                f"deployer.dev_private_key: a public dev key is only used on anvil (chain id "
                f"{ANVIL_CHAIN_ID}), this chain is {chain_id}; set {DEFAULT_KEY_ENV} or deployer.keystore"
            )
        return account_from_key(settings.dev_private_key, "deployer.dev_private_key")
    raise ConfigError(f"deployer: set {DEFAULT_KEY_ENV} or name deployer.keystore in the config")


def _check_record_path(out: Path) -> None:
    """Refuse a record path that cannot be written before deploying, not after: a contract
    deployed without its record is paid for and hard to find."""
    if out.is_dir():
        raise ConfigError(f"--out: {out} is a directory; name the record file, e.g. {out / 'deployment.json'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out: cannot create the folder of {out}: {exc}") from exc
    if not os.access(out.parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ConfigError(f"--out: {out} is not writable")


def deploy(rpc_url: str, config_path: Path, out: Path, environ: Mapping[str, str],
           warn: Callable[[str], None] | None = None, *,
           quantization: QuantizationConfig | None = None) -> Deployment:
    """Validate, compile, deploy and write the record; returns it.

    ``warn`` is told, before anything is sent, what a valid but fragile config risks
    (:func:`~fedtss.chain.config.committee_warning`). ``quantization`` is the federation's (its
    nodes' ``[federation]`` settings, which the deployment config does not hold): when given and
    the config's mode is masked, a sum that could wrap around the ring is refused before anything
    is sent (:func:`fedtss.quantize.check_capacity`). Without it that check is left to the agents.
    """
    config, settings = load_config(config_path)
    model = load_model_terms(config_path)
    if quantization is not None and config.aggregation.is_masked:
        check_capacity(quantization, modulus_bits=config.aggregation.modulus_bits)
    caution = committee_warning(len(config.committee), config.threshold)
    if caution is not None and warn is not None:
        warn(caution)
    _check_record_path(Path(out))
    artifact = compile_contracts()["FedTSSRounds"]
    w3 = connect(rpc_url)
    chain_id = w3.eth.chain_id
    account = resolve_deployer(settings, chain_id, environ)
    address, receipt = deploy_rounds(w3, account, artifact, config)
    deployment = Deployment(
        chain_id=chain_id,
        address=address,
        abi_path=artifact.path,
        deploy_block=receipt["blockNumber"],
        tx_hash=transaction_hash(receipt),
        config=config,
        model=model,
    )
    try:
        deployment.write(Path(out))
    except OSError as exc:
        raise ConfigError(
            f"--out: deployed {address} (transaction {deployment.tx_hash}, block {deployment.deploy_block}) "
            f"but could not write the record {out}: {exc}"
        ) from exc
    return deployment
