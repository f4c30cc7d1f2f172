"""Batches for the dispatcher: the next job in fair order, and the jobs right behind it that share its shape.

A batch never reorders the queue: a job joins only when it is the one `FairQueue.pop_next` would hand out next anyway,
and the batch ends at the first job of another shape (an upscale never batches). The members run as one unit of
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


def shape_of(queued: Queued) -> Hashable | None:
    """What a job must share with the others of its batch (t2v's BATCH_KEYS); None: it runs alone (an upscale, or a
    stored row t2v no longer accepts)."""
    spec = queued.spec
    if spec is None or spec.upscale is not None:
        return None
    return tuple(getattr(spec.request, key) for key in BATCH_KEYS)


def take_batch(queue: FairQueue[Queued], limit: int) -> list[Queued]:
    """Pop the next job in fair order, then the next ones while they share its shape, `limit` jobs at most."""
    first = queue.pop_next()
    if first is None:
        return []
    batch, shape = [first], shape_of(first)
    while shape is not None and len(batch) < limit:
        following = queue.peek_next()
        if following is None or shape_of(following) != shape:
            break
        batch.append(following)
        popped = queue.pop_next()
        assert popped is following, "pop_next must hand out the job peek_next showed"
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
