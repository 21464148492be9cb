"""The mde-connector as a Splunk SOAR app (splunk-soar-sdk).

One source, two hosts: the actions, their parameters and data paths and the
asset configuration are generated from the connector's ``manifest.json``
(:mod:`.models`); each action runs the connector's own handler through
:func:`connector.actions.run_action` (validation, error kinds, correlation
ids, artifacts, summary); ``on poll`` runs the connector's poller
(:mod:`.ingest`).

Run an action locally (the SDK's runner), from this directory::

    python -m src.app action get_alert_related_files -p params.json -a asset.json
"""

# No "from __future__ import annotations": the SDK reads the annotations at run time.

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from soar_sdk.abstract import SOARClient
from soar_sdk.action_results import ActionResult as SoarActionResult
from soar_sdk.app import App
from soar_sdk.asset import BaseAsset
from soar_sdk.exceptions import ActionFailure
from soar_sdk.logging import getLogger
from soar_sdk.models.artifact import Artifact
from soar_sdk.models.container import Container
from soar_sdk.params import OnPollParams, Params

from connector.actions import ActionContext, run_action
from connector.config import Config, resolve
from connector.errors import ConfigError, InputError, redact
from connector.sdk import ActionResult
from connector.text import escape_text

from . import ingest, models

logger = getLogger()
MANIFEST = models.load_manifest()
Asset = models.asset_class(MANIFEST)
FILES = MANIFEST.action("get_alert_related_files")
CONNECTIVITY = MANIFEST.action("test_connectivity")

app = App(
    name=MANIFEST.name,
    app_type="endpoint",
    logo="logo.svg",
    logo_dark="logo_dark.svg",
    product_vendor=MANIFEST.raw["vendor"],
    product_name=MANIFEST.raw["product"],
    publisher=MANIFEST.raw["publisher"],
    appid=models.app_id(MANIFEST),
    python_version="3.13",
    asset_cls=Asset,
)


def soar_state_dir() -> str | None:
    """``mde-connector`` in the app's state directory on a SOAR host (kept,
    backed up and removed with the app), or None elsewhere."""
    base = Path(app.actions_manager.get_state_dir())
    return str(base / "mde-connector") if base.is_dir() else None


def connector_config(asset: Any) -> Config:
    """The connector's Config from the asset's fields (its own validation;
    ConfigError names the key). SOAR-only ingestion settings are left out;
    the token cache and rate budget live in the app's state directory unless
    the asset sets ``state_dir``."""
    values = {k: v for k, v in asset.model_dump().items()
              if k not in models.INGEST_SETTINGS and v is not None and v != ""}
    if "state_dir" not in values and (state_dir := soar_state_dir()):
        values["state_dir"] = state_dir
    return resolve(values, MANIFEST)


def _context(asset: Any) -> ActionContext:
    return ActionContext(config=connector_config(asset), progress=logger.progress)


def run(name: str, params: dict[str, Any], asset: Any) -> ActionResult:
    """Run one connector action with the asset's configuration: the same
    dispatch as the CLI and the playbook engine (no local store: SOAR keeps
    the results and artifacts)."""
    try:
        context = _context(asset)
    except ConfigError as err:
        # Invalid input is reported before invalid configuration, as the CLI does.
        try:
            MANIFEST.action(name).validate_params(params)
        except InputError as invalid:
            return ActionResult.failure(name, invalid, params)
        return ActionResult.failure(name, err, params)
    return run_action(name, params, context)


def error_summary(result: ActionResult) -> dict[str, Any]:
    """A failed result's error object as summary keys (kind, correlation id...)."""
    error = dict(result.error or {})
    return {f"error_{k}" if k != "correlation_id" else k: v for k, v in error.items()}


def failed(result: ActionResult, params: dict[str, Any]) -> SoarActionResult:
    """A failed SOAR action result carrying the connector's sentence and error kind."""
    out = SoarActionResult(False, result.message, params)
    out.set_summary(error_summary(result))
    return out


def save_artifacts(soar: SOARClient, result: ActionResult) -> int:
    """Save the result's artifacts in the container the action runs in
    (SOAR keeps one per source_data_identifier, so a re-run adds nothing)."""
    container_id = soar.get_executing_container_id()
    if not container_id:
        return 0
    for artifact in result.artifacts:
        record = ingest.soar_artifact(artifact)
        record["container_id"] = container_id
        soar.artifact.create(record)
    return len(result.artifacts)


def test_connectivity(soar: SOARClient, asset: BaseAsset) -> None:
    result = run(CONNECTIVITY.name, {}, asset)
    logger.info(result.message)
    if not result.ok:
        raise ActionFailure(result.message)


# The SDK takes the action's description from the docstring: the manifest's.
test_connectivity.__doc__ = CONNECTIVITY.description
app.test_connectivity()(test_connectivity)


FilesParams = models.params_class(FILES)
FilesOutput = models.output_class(FILES)
FilesSummary = models.summary_class(FILES)


def get_alert_related_files(params: Params, soar: SOARClient, asset: BaseAsset):  # type: ignore[no-untyped-def]
    """Run the connector's Get Alert Related Files and save its file artifacts.

    No return annotation: the SDK would read it instead of ``output_class``,
    the model generated from the manifest's data paths."""
    given = params.model_dump(exclude_none=True)
    result = run(FILES.name, given, asset)
    if not result.ok:
        return failed(result, given)
    try:
        save_artifacts(soar, result)
    except Exception as exc:
        reason = escape_text(redact(str(exc)))[:300]
        raise ActionFailure(f"The file artifacts could not be saved ({exc.__class__.__name__}: {reason}).") from None
    soar.set_message(result.message)
    if FilesSummary is not None:
        soar.set_summary(FilesSummary(**result.summary))
    # The API's records as received, less what SOAR's database refuses (NUL,
    # lone surrogates, NaN): see ingest.clean.
    return [FilesOutput(**ingest.clean(item)) for item in result.data if isinstance(item, dict)]


app.action(
    name=models.soar_action_name(FILES),
    identifier=FILES.name,
    description=FILES.description,
    verbose=FILES.description,
    action_type=FILES.type,
    read_only=FILES.read_only,
    params_class=FilesParams,
    output_class=FilesOutput,
    summary_type=FilesSummary,
)(get_alert_related_files)  # type: ignore[arg-type]  # the SDK's NamedCallable wants a settable __globals__


@app.on_poll()
def on_poll(params: OnPollParams, soar: SOARClient, asset: BaseAsset) -> Iterator[Container | Artifact]:
    """Ingest new Defender alerts: one container per alert with its alert and file artifacts."""
    try:
        config = connector_config(asset)
    except ConfigError as err:
        raise ActionFailure(err.sentence()) from None
    from connector.http.client import DefenderClient

    manual = params.is_manual_poll()
    outcome = ingest.PollOutcome()
    settings = models.ingest_settings(asset.model_dump())
    yield from ingest.poll(
        client=DefenderClient.from_config(config),
        state=asset.ingest_state,
        settings=settings,
        manual=manual,
        max_containers=int(params.container_count) if manual and params.container_count else None,
        max_artifacts=int(params.artifact_count) if manual and params.artifact_count else None,
        make_container=lambda record: Container(**record),
        make_artifact=lambda record: Artifact(**record),
        outcome=outcome,
        log=logger.warning,
    )
    logger.info(f"{outcome.containers} containers, {outcome.artifacts} artifacts, "
                f"{len(outcome.quarantined)} alerts quarantined, {len(outcome.errors)} problems")
    if outcome.listing_errors and not outcome.containers and not outcome.quarantined:
        # Nothing could be listed (sign-in, permission, network): the poll failed.
        raise ActionFailure(outcome.listing_errors[0])


APP_DIR = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    app.cli()
