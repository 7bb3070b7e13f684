"""A job: the set of entities one extraction must bring up to date, frozen at its start.

A full dump of a large school takes several days of request budget, so one job spans
several runs. The job is recorded in the state database (under the pseudo-entity
``_job``) with its frozen upper time bound and which of its entities are done; a run
continues the unfinished job before it starts a new one, so an entity finished before a
budget stop is not walked again by the rerun. Each entity of the job has its own
checkpoint (see :mod:`extractor.walks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

JOB_KEY = "_job"
JOB_FORMAT = 1


class CheckpointStore(Protocol):
    """The part of the state store jobs, walks and watermarks use."""

    def load_checkpoint(self, scope: str, entity: str) -> dict[str, Any] | None: ...

    def save_checkpoint(self, scope: str, entity: str, data: dict[str, Any]) -> None: ...

    def delete_checkpoint(self, scope: str, entity: str) -> None: ...

    def get_watermark(self, scope: str, entity: str) -> datetime | None: ...

    def set_watermark(self, scope: str, entity: str, value: datetime) -> None: ...


@dataclass
class Job:
    """Which entities a job covers, which are done, and its frozen upper bound."""

    job_id: str
    started_at: datetime
    entities: dict[str, bool] = field(default_factory=dict)  # entity -> done
    full: bool = True

    @property
    def pending(self) -> list[str]:
        return [name for name, done in self.entities.items() if not done]

    @property
    def finished(self) -> bool:
        return all(self.entities.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": JOB_FORMAT,
            "job_id": self.job_id,
            "started_at": self.started_at.isoformat(),
            "entities": dict(self.entities),
            "full": self.full,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        if data.get("format") != JOB_FORMAT:
            raise ValueError(f"unknown job format {data.get('format')!r}")
        entities = data.get("entities")
        if not isinstance(entities, dict):
            raise ValueError("a job lists its entities")
        return cls(
            job_id=str(data["job_id"]),
            started_at=datetime.fromisoformat(str(data["started_at"])),
            entities={str(k): bool(v) for k, v in entities.items()},
            full=bool(data.get("full", True)),
        )


def load_or_start_job(
    store: CheckpointStore | None,
    scope: str,
    entities: Iterable[str],
    *,
    job_id: str,
    now: datetime,
    full: bool = True,
) -> tuple[Job, bool]:
    """The unfinished job of ``scope`` with ``entities`` added, or a new job.

    Returns the job and whether it continues an earlier one. Entities of an unfinished
    job that this run did not ask for stay pending for a later run.
    """
    wanted = list(entities)
    if store is not None:
        raw = store.load_checkpoint(scope, JOB_KEY)
        if raw is not None:
            job = Job.from_dict(raw)
            if not job.finished:
                for name in wanted:
                    job.entities.setdefault(name, False)
                store.save_checkpoint(scope, JOB_KEY, job.to_dict())
                return job, True
    job = Job(job_id=job_id, started_at=now, entities=dict.fromkeys(wanted, False), full=full)
    if store is not None:
        store.save_checkpoint(scope, JOB_KEY, job.to_dict())
    return job, False


def mark_done(store: CheckpointStore | None, scope: str, job: Job, entity: str) -> None:
    """Record that ``entity`` is complete for ``job``."""
    job.entities[entity] = True
    if store is not None:
        store.save_checkpoint(scope, JOB_KEY, job.to_dict())
