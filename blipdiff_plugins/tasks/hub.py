"""A Hub id without the network: one quick answer instead of a minute of download retries.

diffusers retries every file of a model it cannot reach ("Retrying in Ns" for 50-120 s) before it fails. Before
loading a Hub id, `check_hub_model` looks in the local Hub cache and, when the id is not there, asks the Hub once
(a few seconds at most): offline mode or an unreachable Hub ends in one line naming ``model`` and what works
without the network (a pipeline folder, or the built-in model).
"""

from __future__ import annotations

import os

from .errors import ModelArgumentError

PROBE_TIMEOUT_S = 5.0


def hub_offline() -> bool:
    """Whether the Hub's offline mode is on (``HF_HUB_OFFLINE``, read now, or as huggingface_hub read it at import)."""
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def hub_unreachable(repo_id: str) -> str | None:
    """Why the Hub cannot be reached (one short reason), or `None` when it answers. One request, no retries."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(f"{constants.ENDPOINT}/api/models/{repo_id}", timeout=PROBE_TIMEOUT_S)
    except Exception as error:  # any transport error (refused, DNS, timeout): the answer is "not reachable"
        return f"{type(error).__name__} from {constants.ENDPOINT}"
    return None


def is_cached(repo_id: str) -> bool:
    """Whether the Hub cache holds a snapshot of ``repo_id`` (its model_index.json)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "model_index.json"), str)
    except ValueError:  # not a valid repo id
        return False


def check_hub_model(model: str) -> bool:
    """Before loading ``model`` (a folder or a Hub id): whether to load it from the Hub cache only.

    Returns `False` for a folder and for a Hub id the Hub answers for; `True` for a cached id while the Hub is offline or
    unreachable. An id that is neither cached nor reachable raises `ModelArgumentError` naming ``model``.
    """
    if os.path.exists(model):
        return False
    cached = is_cached(model)
    reason = "HF_HUB_OFFLINE is set" if hub_offline() else hub_unreachable(model)
    if reason is None:
        return False
    if cached:
        return True
    raise ModelArgumentError(
        f"`model`: could not load {model!r}: no network to the Hub ({reason}) and the id is not in the Hub cache; connect and run again "
        "(it downloads once), or pass `model FOLDER` (a pipeline folder) or `model builtin` (the toy model, offline).",
        argument="model",
    )
