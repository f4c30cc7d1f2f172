"""Batches for the dispatcher: the next job in fair order, and the jobs behind it that share its shape and style.

The batch starts with the job `FairQueue.pop_next` hands out and takes the jobs right behind it in fair order while
they share its shape (an upscale never batches). A job of another *style* but the same shape does not end the batch:
the batch steps over it (its user's later jobs too, so each user's jobs keep their order) and goes on gathering
jobs of its own style among the next STYLE_WINDOW × `limit` jobs of the fair order, so that a worker applies one
style (a LoRA fused into the weights, bot.gpu.styles) for a whole batch instead of switching at every job. The jobs
stepped over keep their fair order, and the next unit starts with the first of them: as without styles, a job with
k jobs ahead of it in fair order is in one of the next k + 1 units (those units may carry jobs of their style from
behind it, within the window). Any other shape ends the batch, as without styles. The members run as one unit of
executor work (`bot.gpu.work.batch_work`) that stops early only when every member asked to (`shared_token`).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence

from bot.gpu.executor import CancelToken
from bot.jobs.queue import FairQueue
from bot.jobs.spec import Queued
from t2v.request import BATCH_KEYS

log = logging.getLogger(__name__)

STYLE_WINDOW = 3  # a batch looks for jobs of its style among the next STYLE_WINDOW × BATCH_MAX jobs in fair order


def shape_of(queued: Queued) -> tuple[Hashable, ...] | None:
    """What a job must share with the others of its batch: t2v's BATCH_KEYS, then its style (last); None: it runs
    alone (an upscale, or a stored row t2v no longer accepts)."""
    spec = queued.spec
    if spec is None or spec.upscale is not None:
        return None
    return (*(getattr(spec.request, key) for key in BATCH_KEYS), spec.style)


def take_batch(queue: FairQueue[Queued], limit: int) -> list[Queued]:
    """Pop the next job in fair order, then the jobs behind it of its shape and style (stepping over jobs that
    differ only in style), `limit` jobs at most."""
    first = queue.pop_next()
    if first is None:
        return []
    batch, shape = [first], shape_of(first)
    if shape is None or limit == 1:
        return batch
    passed: set[int] = set()  # users with a job the batch stepped over: none of their later jobs may join
    for following in queue.service_order()[:STYLE_WINDOW * limit]:
        if len(batch) >= limit:
            break
        other = shape_of(following)
        if other == shape and following.user_id not in passed:
            if passed:  # out of turn: the users stepped over keep their turn
                batch.append(queue.take(following.id))
            else:
                popped = queue.pop_next()
                assert popped is following, "pop_next must hand out the job service_order shows first"
                batch.append(following)
        elif other is not None and other[:-1] == shape[:-1]:
            passed.add(following.user_id)  # another style: stepped over, not ending the batch
        else:
            break
    if passed:
        log.debug("batch of style %s stepped over jobs of %d users", shape[-1], len(passed))
    return batch


def shared_token(tokens: Sequence[CancelToken]) -> CancelToken:
    """A token cancelled once every one of `tokens` is: a batch stops only when each of its members was asked to."""
    shared = CancelToken()

    def check() -> None:
        if all(token.is_set() for token in tokens):
            shared.cancel()

    for token in tokens:
        token.when_cancelled(check)
    return shared
