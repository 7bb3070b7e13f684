"""What a run reports: per entity and as a whole (``extract``), and what a job still
needs (``plan``). Plain data: the manifest, the summary table and the tests read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from extractor.errors import ExtractorError


@dataclass
class EntityResult:
    """What happened to one entity in this run."""

    name: str
    total: int | None = None
    pages: int = 0
    rows: int = 0
    files: list[str] = field(default_factory=list)
    requests: int = 0
    recovered: int = 0  # bodies replayed from the spool instead of fetched
    refetched_pages: int = 0
    duplicates_removed: int = 0
    inserted: int = 0  # Ids new to the snapshot
    updated: int = 0  # Ids whose row the snapshot replaced
    deleted: int = 0  # rows newly marked _deleted_at (full walks only)
    snapshot_rows: int | None = None
    total_changes: int = 0
    remaining: int | None = None  # requests still needed when the run stopped
    problems: dict[str, int] = field(default_factory=dict)
    unknown_fields: list[str] = field(default_factory=list)
    status: str = "pending"  # complete, stopped, failed
    error: str | None = None


@dataclass
class RunResult:
    """The outcome of :meth:`Extraction.run`."""

    run_id: str
    job_id: str
    resumed: bool
    started_at: datetime
    finished_at: datetime
    elapsed: float
    requests: int
    minimum_requests: int
    entities: dict[str, EntityResult]
    error: ExtractorError | None = None
    interrupted: bool = False

    @property
    def complete(self) -> bool:
        return (
            self.error is None
            and not self.interrupted
            and all(e.status == "complete" for e in self.entities.values())
        )


@dataclass(frozen=True)
class EntityPlan:
    """What an entity of the job still needs (``plan``)."""

    name: str
    total: int | None  # items (or lookups, for lookup options); None if unknown
    pages: int | None  # requests a whole walk takes
    left: int | None  # requests still needed
    window: str = "full walk"  # or "changes since ..." for an incremental window
