"""Fetching a published checkpoint from the Hugging Face Hub (`python -m t2v download`): downloaded, up to date, or,
with the Hub out of reach, already there (the official files, all present and whole); else DownloadError, naming the
files to copy by hand."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path

from t2v.errors import DownloadError, InvalidRequest, WeightsError
from t2v.loader import MARKERS, check_source, detect_layout
from t2v.preflight import weights_file
from t2v.weights.files import OFFICIAL_REPO
from t2v.weights.modelscope import DEFAULT_FILES

log = logging.getLogger(__name__)

OFFICIAL_FILES = f"configuration.json, {', '.join(DEFAULT_FILES.values())}"  # what the official repo's model is


def download(directory: Path, repo: str) -> str:
    """Snapshot a Hugging Face repo with huggingface_hub; the one line that says what happened."""
    from huggingface_hub import HfApi, snapshot_download

    errors = _hub_errors()
    if repo == OFFICIAL_REPO:  # its layout is known without the Hub: a folder of another is refused even offline
        _check_no_other_model(directory, repo, {"configuration.json", *DEFAULT_FILES.values()})
    try:  # out of reach, snapshot_download would hand back a non-empty folder as it is, fetched or not
        info = HfApi().repo_info(repo)
    except errors as exc:
        if not _holds_official(directory, repo):
            raise _not_downloaded(directory, repo, exc) from exc
        return (f"already there: {directory} holds {OFFICIAL_FILES} (the files {repo} publishes), each whole; nothing "
                f"was downloaded: the Hugging Face Hub could not be reached to compare them ({type(exc).__name__})")
    _check_no_other_model(directory, repo, {sibling.rfilename for sibling in getattr(info, "siblings", None) or []})
    before = _listing(directory)
    try:
        path = snapshot_download(repo_id=repo, local_dir=directory)
        check_source(path)
    except errors as exc:
        raise _not_downloaded(directory, repo, exc) from exc
    return (f"downloaded {repo} to {path}" if _listing(directory) != before else
            f"already there: {path} holds {repo}'s files as the Hub has them; nothing to download")


def _hub_errors() -> tuple[type[Exception], ...]:
    """What huggingface_hub raises when the Hub is out of reach or refuses: its own errors, OSError (requests' errors
    before huggingface_hub 1.0, OfflineModeIsEnabled), its HTTP client's transport errors since 1.0; and WeightsError,
    for a download that is not a model."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    transport = [importlib.import_module(name).TransportError for name in ("httpx2", "httpx")
                 if importlib.util.find_spec(name)]
    return (HfHubHTTPError, LocalEntryNotFoundError, OSError, WeightsError, *transport)


def _holds_official(directory: Path, repo: str) -> bool:
    """Whether `directory` holds the official repo's model files, all there and whole (t2v.preflight.weights_file:
    their headers and ends; none other is known without the Hub)."""
    if repo != OFFICIAL_REPO or not directory.is_dir():
        return False
    try:
        if detect_layout(directory) != "modelscope":
            return False
        damaged = [problem for problem in map(weights_file, check_source(directory)) if problem]
    except WeightsError as exc:
        log.info("%s does not hold %s whole: %s", directory, repo, exc)
        return False
    if damaged:
        log.info("%s does not hold %s whole: %s", directory, repo, "; ".join(damaged))
    return not damaged


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of each file under `folder`, huggingface_hub's own .cache folder aside."""
    files = [path for path in folder.rglob("*") if path.is_file()] if folder.is_dir() else []
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns) for path in files
            if path.relative_to(folder).parts[0] != ".cache"}


def _not_downloaded(directory: Path, repo: str, exc: BaseException) -> DownloadError:
    """The download failed: why, and how to do without the Hub."""
    said = " ".join(str(exc).split())  # the Hub's messages run over several lines
    files = f"the four files ({OFFICIAL_FILES})" if repo == OFFICIAL_REPO else "the repository's files, in its layout"
    return DownloadError(f"could not download {repo} from the Hugging Face Hub ({type(exc).__name__}: {said}). This "
                         f"needs internet access; on a machine without it, copy {files} into {directory} by hand.")


def _check_no_other_model(directory: Path, repo: str, files: set[str]) -> None:
    """InvalidRequest, before anything is downloaded, when `directory` holds a model of another layout than `repo`'s
    (`files`: the repo's, as the Hub lists them): the two would share the folder, one of them never loaded, and a
    download said to be done would load as the model that was there (an export's manifest is read first)."""
    coming = next((marker for marker in MARKERS if marker in files), None)
    here = next((marker for marker in MARKERS if (directory / marker).is_file()), None)
    if coming is None or here is None or here == coming:
        return
    there, kind = f"{MARKERS[here]} ({here})", f"{MARKERS[coming]} ({coming})"
    if list(MARKERS).index(here) < list(MARKERS).index(coming):
        said = (f"holds {there}, which a load reads first, and {repo} is {kind}: that would be saved beside it and "
                "never loaded")
    else:
        said = (f"holds {there}, and {repo} is {kind}, which a load reads first: it would load in place of the model "
                "there, the two mixed in one folder")
    raise InvalidRequest(f"directory {directory}: {said}; download into a new or empty folder")
