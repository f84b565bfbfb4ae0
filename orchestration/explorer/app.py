"""The explorer's web app: server-rendered pages over a :class:`FederationView`, read-only.

Every page is plain HTML from a Jinja2 template; ``static/explorer.js`` polls ``/api/head``
and, when a new block arrives, fetches the same page again with the ``X-Fedtss-Partial``
header and swaps the ``<main>`` content, so pages follow a running federation without a
reload. The script compares the head's hash, not its number, so a page also follows a
reorganization that replaced blocks at the same height. When the node does not answer, a page
says so (HTTP 503) and the script keeps polling; the next answer brings the page back.

With ``confirmations`` k > 0 the view counts only blocks up to ``head - k`` (the confirmed
head): rounds, their events and the contract's state are shown as they stood there. Block,
transaction and address pages still show newer blocks, marked "unconfirmed", and the header of
every page says how many confirmations the explorer waits for.

Path and query parameters are parsed by :mod:`orchestration.explorer.params` alone: a
parameter that names nothing the explorer could show gets a 400 page saying what was wrong,
one that is well formed but not on this chain a 404 page.

Models leave through ``/model/<cid>`` (the raw blob) and ``/model/<cid>.pt`` (a PyTorch state
dict, when the explorer knows the task: ``--task``, or the run folder's client config), for
model CIDs of this federation only (:meth:`FederationView.model_cids`), never any other blob of
the store. Rounds show the clients' federated evaluation of each model, read from the model
blobs that carry it (:mod:`orchestration.explorer.modelfiles`), beside the central test metrics
of ``report.json``.

The app holds no key and sends no transaction: the only JSON-RPC calls it makes are reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fedtss.chain import RoundState
from fedtss.chain.redaction import display_url
from fedtss.errors import ChainError, FedTSSError
from fedtss.storage import LocalStore
from fedtss.validation import CHECK_BYTES
from orchestration.explorer.chainview import (
    FederationView,
    RoundSummary,
    chain_now,
    classify_query,
    utc_datetime,
)
from orchestration.explorer.chart import data_table, federated_series, line_chart, report_series
from orchestration.explorer.modelfiles import (
    MODEL_MAX_BYTES,
    ModelFiles,
    ModelUnavailable,
    federated_evaluations,
    format_metric,
    report_evaluations,
)
from orchestration.explorer.params import (
    BadRequest,
    parse_address,
    parse_block_ref,
    parse_cid_param,
    parse_hash,
    parse_round,
    parse_search,
    shown,
)

__all__ = ["PARTIAL_HEADER", "create_app"]

HERE = Path(__file__).resolve().parent
PARTIAL_HEADER = "X-Fedtss-Partial"
_REPORT_MAX_BYTES = 8 * 1024 * 1024
_LIVE_STATES = (RoundState.Collecting, RoundState.Aggregating, RoundState.Reconstructing)


def create_app(view: FederationView, *, report_path: Path | None = None, store: LocalStore | None = None,
               poll_seconds: float = 2.0, title: str = "fedtss explorer", task: str | None = None,
               model_max_bytes: int = MODEL_MAX_BYTES) -> Starlette:
    """The ASGI app; ``report_path`` (a run's report.json) adds accuracy and loss charts, ``store``
    the clients' federated metrics and model downloads, ``task`` (default: the one the run
    folder's ``nodes/client-0.toml`` names) state-dict downloads."""
    env = _environment()
    models = ModelFiles(store, task=task, run_dir=view.run_dir, fixed=view.deployment.model_layout,
                        max_bytes=model_max_bytes)
    pages = _Pages(view, env, report_path, store, poll_seconds, title, models)
    routes = [
        Route("/", pages.overview),
        Route("/rounds", pages.rounds),
        Route("/rounds/{number}", pages.round),
        Route("/blocks", pages.blocks),
        Route("/blocks/{ref}", pages.block),
        Route("/tx/{tx_hash}", pages.transaction),
        Route("/address/{address}", pages.address),
        Route("/cid/{cid}", pages.cid),
        Route("/model/{cid}.pt", pages.model_state_dict),
        Route("/model/{cid}", pages.model_blob),
        Route("/search", pages.search),
        Route("/api/head", pages.api_head),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: pages.http_error})


# ---------------------------------------------------------------------------- filters


def _short(value: str | None, keep: int = 6) -> str:
    if not value:
        return ""
    return value if len(value) <= 2 * keep + 3 else f"{value[:keep + 2]}…{value[-keep:]}"


def _when(timestamp: int | None) -> str:
    when = utc_datetime(timestamp) if timestamp else None
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else str(timestamp or "")


def _iso(timestamp: int | None) -> str:
    when = utc_datetime(timestamp) if timestamp else None
    return when.isoformat() if when else ""


def _ether(wei: int) -> str:
    return f"{wei / 10**18:,.6f} ETH"


def _gwei(wei: int | None) -> str:
    return "" if wei is None else f"{wei / 10**9:,.3f} gwei"


def _metrics(metrics: dict[str, float] | None) -> str:
    """``accuracy 91.20%, loss 0.3120``: a model's metrics by name."""
    return ", ".join(f"{name} {format_metric(name, value)}" for name, value in sorted((metrics or {}).items()))


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(short=_short, when=_when, iso=_iso, ether=_ether, gwei=_gwei,
                       thousands=lambda n: "" if n is None else f"{n:,}",
                       metrics=_metrics)
    env.globals["check_bytes"] = CHECK_BYTES  # bytes a member posts per client (fedtss.validation)
    return env


# ------------------------------------------------------------------------------ pages


class _Pages:
    """One method per route; each builds a context from the view and renders one template."""

    def __init__(self, view: FederationView, env: Environment, report_path: Path | None, store: LocalStore | None,
                 poll_seconds: float, title: str, models: ModelFiles) -> None:
        self.view, self.env, self.report_path, self.store = view, env, report_path, store
        self.poll_seconds, self.title, self.models = poll_seconds, title, models

    def _page(self, request: Request, template: str, *, section: str, status_code: int = 200,
              **context: Any) -> HTMLResponse:
        base = {"partial": request.headers.get(PARTIAL_HEADER) == "1", "section": section, "title": self.title,
                "poll_seconds": self.poll_seconds,
                "rpc_url": display_url(self.view.rpc_url),  # never a hosted node's API key on a page
                "contract": self.view.contract.address, "RoundState": RoundState,
                "confirmations": self.view.confirmations,
                "live_states": _LIVE_STATES, "request_path": request.url.path,
                "model_links": self._model_links}
        return HTMLResponse(self.env.get_template(template).render(**base, **context), status_code=status_code)

    def _render(self, request: Request, template: str, build: Callable[[], dict[str, Any] | None], *,
                section: str) -> Response:
        """``build()`` reads the chain; it raises BadRequest for a parameter it cannot use (400),
        returns None for one naming nothing on this chain (404), and ChainError is a node away (503)."""
        try:
            context = build()
        except BadRequest as exc:
            return self._page(request, "bad_request.html", section=section, status_code=400, message=str(exc))
        except ChainError as exc:
            return self._page(request, "error.html", section=section, status_code=503, error=str(exc))
        if context is None:
            return self._page(request, "not_found.html", section=section, status_code=404, what=request.url.path)
        return self._page(request, template, section=section, **context)

    def http_error(self, request: Request, exc: HTTPException) -> Response:
        """A path no route takes (404) or a method no page answers (405), as a page."""
        if exc.status_code == 404:
            return self._page(request, "not_found.html", section="overview", status_code=404, what=request.url.path)
        return self._page(request, "bad_request.html", section="overview", status_code=exc.status_code,
                          message=f"{request.method} {shown(request.url.path)}: {exc.detail}")

    def _head(self) -> dict[str, Any]:
        """The head (number and hash), the confirmed head pages count up to, and the chain's clock."""
        block = self.view.latest_block()
        return {"head": block.number, "head_hash": block.hash, "confirmed": block.number - self.view.confirmations,
                "chain_time": chain_now(block.timestamp, time.time())}

    def _report(self) -> dict[str, Any] | None:
        if self.report_path is None or not self.report_path.is_file():
            return None
        try:
            if self.report_path.stat().st_size > _REPORT_MAX_BYTES:
                return None
            report = json.loads(self.report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return report if isinstance(report, dict) else None

    def _model_links(self, cid: str | None) -> list[tuple[str, str, str]]:
        """``(href, label, description)`` of each download of model ``cid`` the explorer can serve."""
        if not cid or not self.models.has(cid):
            return []
        links = [(f"/model/{cid}", "blob", "the model blob as stored (fedtss model format)")]
        if self.models.task is not None:
            links.append((f"/model/{cid}.pt", ".pt", "a PyTorch state dict that the task's model() loads"))
        return links

    def _measures(self, rounds: Sequence[RoundSummary], highlight: int | None = None) -> dict[str, Any]:
        """The central test metrics (report.json) and the clients' federated evaluation of each
        round's model (``federated``: round k -> :class:`Evaluation` of round k's result;
        ``carried``: round j -> what j's result carries, the evaluation of the model j trained
        from), as charts and per round."""
        report = self._report()
        carried = {s.round: self.models.metrics(s.result_cid) for s in rounds if s.result_cid}
        federated = {**report_evaluations(report), **federated_evaluations(rounds, carried)}
        accuracy, loss = report_series(report) if report is not None else ([], [])
        federated_accuracy, federated_loss = federated_series({k: e.metrics for k, e in federated.items()})
        accuracy, loss = accuracy + federated_accuracy, loss + federated_loss
        report_rounds = {} if report is None else \
            {r.get("round"): r for r in report.get("rounds", []) if isinstance(r, dict)}
        return {"report": report, "federated": federated, "carried": {j: m for j, m in carried.items() if m},
                "charts": bool(accuracy or loss),
                "has_baseline": any(s.css_class == "s-baseline" for s in accuracy + loss),
                "accuracy_chart": line_chart(accuracy, title="Accuracy per round (%)", unit="%", highlight=highlight),
                "loss_chart": line_chart(loss, title="Loss per round", unit="", highlight=highlight),
                "chart_table": data_table(accuracy, loss), "report_rounds": report_rounds}

    # ---------------------------------------------------------------------- routes

    def overview(self, request: Request) -> Response:
        def build() -> dict[str, Any]:
            overview = self.view.overview()
            rounds = self.view.rounds()
            return {"o": overview, "rounds": rounds[-5:][::-1], **self._measures(rounds, overview.current_round),
                    "confirmed": overview.head_block - self.view.confirmations}

        return self._render(request, "overview.html", build, section="overview")

    def rounds(self, request: Request) -> Response:
        def build() -> dict[str, Any]:
            head = self._head()
            rounds = self.view.rounds()
            return {"rounds": rounds[::-1], **head, **self._measures(rounds)}

        return self._render(request, "rounds.html", build, section="rounds")

    def round(self, request: Request) -> Response:
        def build() -> dict[str, Any] | None:
            number = parse_round(request.path_params["number"])
            detail = self.view.round(number)
            if detail is None:
                return None
            return {"r": detail, "n": number, "threshold": self.view.deployment.config.threshold,
                    **self._head(), **self._measures(self.view.rounds(), number),
                    "last_round": self.view.overview().current_round}

        return self._render(request, "round.html", build, section="rounds")

    def blocks(self, request: Request) -> Response:
        def build() -> dict[str, Any]:
            return {"blocks": self.view.latest_blocks(25), **self._head()}

        return self._render(request, "blocks.html", build, section="blocks")

    def block(self, request: Request) -> Response:
        def build() -> dict[str, Any] | None:
            block = self.view.block(parse_block_ref(request.path_params["ref"]))
            return None if block is None else {"b": block, **self._head()}

        return self._render(request, "block.html", build, section="blocks")

    def transaction(self, request: Request) -> Response:
        def build() -> dict[str, Any] | None:
            tx = self.view.transaction(parse_hash(request.path_params["tx_hash"]))
            return None if tx is None else {"tx": tx, **self._head()}

        return self._render(request, "tx.html", build, section="blocks")

    def address(self, request: Request) -> Response:
        def build() -> dict[str, Any]:
            return {"a": self.view.address(parse_address(request.path_params["address"])), **self._head()}

        return self._render(request, "address.html", build, section="blocks")

    def cid(self, request: Request) -> Response:
        def build() -> dict[str, Any]:
            cid = parse_cid_param(request.path_params["cid"])
            size = None
            if self.store is not None and self.store.has(cid):
                size = self.store.path_of(cid).stat().st_size
            uses = self.view.cid_uses(cid)
            is_model = cid in self.view.model_cids()
            return {"cid": cid, "uses": uses, "size": size, "has_store": self.store is not None,
                    "is_model": is_model, "metrics": self.models.metrics(cid) if is_model else {}}

        return self._render(request, "cid.html", build, section="overview")

    def model_blob(self, request: Request) -> Response:
        """A model of this federation as stored: its bytes, to download."""
        return self._download(request, lambda cid: (self.models.blob(cid), f"{cid}.bin"))

    def model_state_dict(self, request: Request) -> Response:
        """A model of this federation as a PyTorch state dict (``torch.save``) the task's model() loads."""
        return self._download(request, lambda cid: (self.models.state_dict(cid), f"{cid}.pt"))

    def _download(self, request: Request, make: Callable[[str], tuple[bytes, str]]) -> Response:
        """``make(cid)``'s bytes as an attachment, for a CID that is a model of this federation; a
        page saying why not otherwise (400 not a CID, 404 no model of ours or not stored, 413 too
        large, 409 the task cannot export it, 503 the node does not answer)."""
        try:
            cid = parse_cid_param(request.path_params["cid"])
            if cid not in self.view.model_cids():
                raise ModelUnavailable(404, f"{cid} is not a model of this federation (the explorer serves "
                                            "only models that rounds trained from or finalized)")
            data, filename = make(cid)
        except BadRequest as exc:
            return self._page(request, "bad_request.html", section="overview", status_code=400, message=str(exc))
        except ChainError as exc:
            return self._page(request, "error.html", section="overview", status_code=503, error=str(exc))
        except ModelUnavailable as exc:
            return self._page(request, "model_unavailable.html", section="overview", status_code=exc.status,
                              message=str(exc))
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                 "X-Content-Type-Options": "nosniff"})

    def search(self, request: Request) -> Response:
        def build() -> dict[str, Any]:
            query = parse_search(request.query_params.get("q", ""))
            if not query:
                return {"query": query, "message": "Type a round number, block number, transaction or block "
                                                   "hash, address or CID."}
            kind, value = classify_query(query, current_round=self.view.overview().current_round)
            if kind == "unknown":
                raise BadRequest(f"{shown(query)} is not a round number, a block number, a transaction or block "
                                 "hash, an address or a CID (numbers are written in the digits 0-9, at most 78 "
                                 "of them)")
            target = self._resolve(kind, value)
            if target is not None:
                raise _Redirect(target)
            return {"query": query, "message": f"Nothing in this federation matches “{query}”."}

        try:
            return self._render(request, "search.html", build, section="search")
        except _Redirect as redirect:
            return RedirectResponse(redirect.target, status_code=303)

    def _resolve(self, kind: str, value: str) -> str | None:
        if kind in ("round", "address", "cid"):
            return {"round": "/rounds/", "address": "/address/", "cid": "/cid/"}[kind] + value
        if kind == "block":
            return f"/blocks/{value}" if int(value) <= self.view.head()[0] else None
        if kind == "hash":  # a transaction's, or a block's: the view answers None for neither
            if self.view.transaction(value) is not None:
                return f"/tx/{value}"
            if self.view.block(value) is not None:
                return f"/blocks/{value}"
        return None

    def api_head(self, request: Request) -> Response:
        try:
            head = self._head()
            return JSONResponse({"ok": True, **head})
        except FedTSSError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=503)


class _Redirect(Exception):
    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target
