"""One simulated school's data: lazy, compact, deterministic, mutable.

Rows are never all rendered. Each entity keeps only compact per-row arrays (modify and
create dates, a version) and a small pool of pre-rendered JSON "templates"; row k's JSON is
its varying fields (Id, dates, a few keys) spliced onto template ``pool[hash(k, version)]``.
Serving a 500-item page is then ~500 bytes-formatting operations, far cheaper than the
extractor's conversion of the same page, and a million-row school costs tens of MB.

Everything derives from ``seed``: two SchoolData with the same arguments serve the same
bytes. ``ground_truth`` yields every live row exactly as the detail endpoint serves it, so
tests compare extraction output with what the API holds.

Filter semantics (documented guesses, see API-FACTS.md): ``ModifyFromDate`` and
``ModifyToDate`` are both inclusive; ``year`` matches students' ``GraduationYearId``;
``EntityTypeId`` matches notes' ``PrimaryEntityTypeID``. Lists are ordered by Id.
"""

from __future__ import annotations

import random
import zlib
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from extractor.simulator.entities import BY_NAME, LIST_ENTITIES, STUDENTS, Entity
from extractor.simulator.values import (
    ATTRIBUTE_BASE,
    format_datetime,
    option_count,
    option_id,
    option_name,
    truncate_us,
    value_for,
)

DAY_US = 86_400 * 1_000_000
HISTORY_DAYS = 4_000  # about eleven years of history before "now"
POOL_SIZE = 1_024  # distinct templates per entity: variety without per-row rendering
NOTE_ENTITY_TYPES = (2201, 2301, 2101)  # company notes, contact notes, student notes

# Fields rendered per row rather than taken from the template pool.
_VARYING = frozenset(
    {
        "Id",
        "StudentId",
        "GraduationYearId",
        "PrimaryEntityTypeID",
        "CreateDate",
        "ModifyDate",
    }
)
# Lookup k serves attribute ATTRIBUTE_BASE + k, i.e. the k-th field of students: its
# AttributeId and Name are rendered per row so that lookups join the students' values.
_LOOKUP_VARYING = frozenset({"AttributeId", "Name"})
_LOOKUP_NAMES = tuple(
    f.name if f.type == "Lookup" else f"{f.name} (not a lookup)" for f in STUDENTS.fields
)


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Query filters of a list request (aware UTC datetimes)."""

    modify_from: datetime | None = None
    modify_to: datetime | None = None
    year: int | None = None
    entity_type_id: int | None = None


@dataclass(frozen=True, slots=True)
class MutationResult:
    """Ids touched by :meth:`SchoolData.mutate`."""

    modified: tuple[int, ...]
    added: tuple[int, ...]
    deleted: tuple[int, ...]


def _epoch_us(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware (UTC)")
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode())


@dataclass
class _Table:
    """Compact state of one entity."""

    entity: Entity
    seed: int
    modify_us: array[int]  # per slot; epoch microseconds, truncated to the rendered digits
    create_us: array[int]
    small: array[int]  # per slot: graduation year (students) or entity type (notes)
    versions: dict[int, int] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    epoch: int = 0  # bumps on every mutation: invalidates filter caches
    has_create_date: bool = False
    _live: array[int] | None = None
    _filtered: dict[ListFilter, tuple[int, array[int]]] = field(default_factory=dict)
    _pool_list: list[bytes] | None = None
    _pool_detail: list[bytes] | None = None
    new_fields: dict[str, Any] = field(default_factory=dict)  # drift: fields schemas lack
    retyped: frozenset[str] = frozenset()  # drift: fields now served as strings

    @property
    def slots(self) -> int:
        return len(self.modify_us)

    def id_of(self, slot: int) -> int:
        return self.entity.id_base + slot * self.entity.id_step

    def slot_of(self, id_: int) -> int | None:
        offset = id_ - self.entity.id_base
        slot, rest = divmod(offset, self.entity.id_step)
        if offset < 0 or rest or slot >= self.slots or slot in self.deleted:
            return None
        return slot

    def live(self) -> array[int]:
        if self._live is None:
            deleted = self.deleted
            self._live = array("q", (s for s in range(self.slots) if s not in deleted))
        return self._live

    def version(self, slot: int) -> int:
        return self.versions.get(slot, 0)

    def modify_digits(self, slot: int) -> int:
        return (slot * 7 + self.version(slot)) % 8

    def invalidate(self) -> None:
        self.epoch += 1
        self._live = None
        self._filtered.clear()


class SchoolData:
    """The data of one simulated school, served page by page."""

    def __init__(
        self,
        *,
        seed: int = 1,
        scale: float = 1.0,
        rows: Mapping[str, int] | None = None,
        now: datetime,
    ) -> None:
        if scale < 0:
            raise ValueError("scale must be >= 0")
        unknown = set(rows or {}) - set(BY_NAME)
        if unknown:
            raise ValueError(f"unknown entities in rows: {sorted(unknown)}")
        self.seed = seed
        self.entities: tuple[str, ...] = tuple(e.name for e in LIST_ENTITIES)
        now_us = _epoch_us(now)
        self._tables: dict[str, _Table] = {}
        for entity in LIST_ENTITIES:
            n = (rows or {}).get(entity.name)
            if n is None:
                n = max(1, round(entity.default_rows * scale))
            self._tables[entity.name] = self._build_table(entity, n, now_us)

    # -- construction -------------------------------------------------------------------

    def _build_table(self, entity: Entity, n: int, now_us: int) -> _Table:
        rng = random.Random(self.seed * 1_000_003 + _stable_hash(entity.name))
        start = now_us - HISTORY_DAYS * DAY_US
        end = now_us - DAY_US  # nothing is modified in the last day before "now"
        modify = array("q", bytes(8 * n))
        create = array("q", bytes(8 * n))
        small = array("q", bytes(8 * n))
        randrange = rng.randrange
        for slot in range(n):
            m = randrange(start, end)
            c = randrange(start, m + 1)
            modify[slot] = truncate_us(m, (slot * 7) % 8)
            create[slot] = truncate_us(c, slot % 8)
            if entity.name == "students":
                small[slot] = 2015 + randrange(14)
            elif entity.name == "notes":
                small[slot] = NOTE_ENTITY_TYPES[randrange(len(NOTE_ENTITY_TYPES))]
        return _Table(
            entity=entity,
            seed=self.seed,
            modify_us=modify,
            create_us=create,
            small=small,
            has_create_date=any(f.name == "CreateDate" for f in entity.fields),
        )

    def _pools(self, table: _Table) -> tuple[list[bytes], list[bytes]]:
        """Render (once, lazily) the template pool: list-subset and full-detail JSON."""
        if table._pool_list is None or table._pool_detail is None:
            entity = table.entity
            pool_list: list[bytes] = []
            pool_detail: list[bytes] = []
            size = min(POOL_SIZE, max(1, table.slots * 2))
            for j in range(size):
                rng = random.Random(f"{self.seed}/{entity.name}/{j}")
                detail: dict[str, Any] = {}
                for index, f in enumerate(entity.fields):
                    if f.name in _VARYING or (
                        entity.name == "lookups" and f.name in _LOOKUP_VARYING
                    ):
                        continue
                    detail[f.name] = value_for(rng, f.type, f.name, ATTRIBUTE_BASE + index)
                for name in table.retyped:
                    if detail.get(name) is not None:
                        detail[name] = str(detail[name])
                listed = {k: v for k, v in detail.items() if entity.field(k).in_list}
                listed.update(table.new_fields)
                detail.update(table.new_fields)
                pool_list.append(orjson.dumps(listed))
                pool_detail.append(orjson.dumps(detail))
            table._pool_list, table._pool_detail = pool_list, pool_detail
        return table._pool_list, table._pool_detail

    def warm(self) -> None:
        """Render every entity's template pool now rather than on its first request."""
        for table in self._tables.values():
            self._pools(table)

    # -- rendering ----------------------------------------------------------------------

    def _render(self, table: _Table, slot: int, pool: list[bytes]) -> bytes:
        """Row ``slot``'s JSON: its varying fields spliced onto its template.

        This is the simulator's hot path (once per served item): keep it to a few
        bytes-formatting operations.
        """
        entity = table.entity
        version = table.versions.get(slot, 0)
        head = b'{"Id":%d' % (entity.id_base + slot * entity.id_step)
        name = entity.name
        if name == "students":
            head += b',"StudentId":"S%08d","GraduationYearId":%d' % (slot, table.small[slot])
        elif name == "notes":
            head += b',"PrimaryEntityTypeID":%d' % table.small[slot]
        elif name == "lookups":  # lookup k serves the attribute ATTRIBUTE_BASE + k
            name_of = _LOOKUP_NAMES[slot] if slot < len(_LOOKUP_NAMES) else f"Lookup {slot}"
            head += b',"AttributeId":%d,"Name":%s' % (ATTRIBUTE_BASE + slot, orjson.dumps(name_of))
        if entity.has_modify_date:
            if table.has_create_date:
                head += b',"CreateDate":"%s"' % format_datetime(table.create_us[slot], slot % 8)
            digits = (slot * 7 + version) % 8
            head += b',"ModifyDate":"%s"' % format_datetime(table.modify_us[slot], digits)
        template = pool[(slot * 2_654_435_761 + version * 40_503) % len(pool)]
        if len(template) > 2:
            return head + b"," + template[1:]
        return head + b"}"

    # -- queries ------------------------------------------------------------------------

    def _table(self, entity: str) -> _Table:
        try:
            return self._tables[entity]
        except KeyError:
            raise KeyError(f"unknown entity {entity!r}") from None

    def has_modify_date(self, entity: str) -> bool:
        return self._table(entity).entity.has_modify_date

    def _matching(self, table: _Table, flt: ListFilter) -> array[int]:
        """Live slots matching ``flt``, in Id order (cached until the next mutation)."""
        name = table.entity.name
        lo = (
            _epoch_us(flt.modify_from) if flt.modify_from and table.entity.has_modify_date else None
        )
        hi = _epoch_us(flt.modify_to) if flt.modify_to and table.entity.has_modify_date else None
        year = flt.year if name == "students" else None
        etype = flt.entity_type_id if name == "notes" else None
        if lo is None and hi is None and year is None and etype is None:
            return table.live()
        key = ListFilter(flt.modify_from, flt.modify_to, year, etype)
        cached = table._filtered.get(key)
        if cached is not None and cached[0] == table.epoch:
            return cached[1]
        modify, small = table.modify_us, table.small
        out = array(
            "q",
            (
                s
                for s in table.live()
                if (lo is None or modify[s] >= lo)
                and (hi is None or modify[s] <= hi)
                and (year is None or small[s] == year)
                and (etype is None or small[s] == etype)
            ),
        )
        table._filtered[key] = (table.epoch, out)
        return out

    def count(self, entity: str, flt: ListFilter = ListFilter()) -> int:
        """How many live rows ``flt`` matches."""
        table = self._table(entity)
        return len(self._matching(table, flt))

    def list_page(self, entity: str, page_number: int, page_size: int, flt: ListFilter) -> bytes:
        """The whole list envelope for one page; pages past the end have empty Items."""
        if page_number < 1 or page_size < 1:
            raise ValueError("page_number and page_size start at 1")
        table = self._table(entity)
        slots = self._matching(table, flt)
        total = len(slots)
        pages = -(-total // page_size)
        start = (page_number - 1) * page_size
        pool, _ = self._pools(table)
        render = self._render
        rows = [render(table, s, pool) for s in slots[start : start + page_size]]
        head = b'{"PageSize":%d,"PageNumber":%d,"Total":%d,"NumberOfPages":%d,"Items":[' % (
            page_size,
            page_number,
            total,
            pages,
        )
        if not rows:
            return head + b"]}"
        # One copy of the page: the envelope rides on the first and last rows.
        rows[0] = head + rows[0]
        rows[-1] += b"]}"
        return b",".join(rows)

    def detail(self, entity: str, id_: int) -> bytes | None:
        """The full record (every field), or None when there is no live row with that Id."""
        table = self._table(entity)
        slot = table.slot_of(id_)
        if slot is None:
            return None
        _, pool = self._pools(table)
        return self._render(table, slot, pool)

    def lookup_options(self, lookup_id: int) -> bytes | None:
        """``/lookups/{id}/options``: a bare array of ``{Id, Name}``, None for no such lookup."""
        if self._table("lookups").slot_of(lookup_id) is None:
            return None
        options = [
            {"Id": option_id(lookup_id, k), "Name": option_name(lookup_id, k)}
            for k in range(option_count(lookup_id))
        ]
        return orjson.dumps(options)

    def ids(self, entity: str) -> list[int]:
        """Every live Id of ``entity``, ascending."""
        table = self._table(entity)
        return [table.id_of(s) for s in table.live()]

    def ground_truth(self, entity: str) -> Iterator[dict[str, Any]]:
        """Every live row exactly as the detail endpoint serves it, in Id order."""
        table = self._table(entity)
        _, pool = self._pools(table)
        for slot in table.live():
            yield orjson.loads(self._render(table, slot, pool))

    def ground_truth_list(self, entity: str) -> Iterator[dict[str, Any]]:
        """Every live row exactly as the list endpoint serves it, in Id order."""
        table = self._table(entity)
        pool, _ = self._pools(table)
        for slot in table.live():
            yield orjson.loads(self._render(table, slot, pool))

    def drift(
        self,
        entity: str,
        *,
        new_fields: Mapping[str, Any] | None = None,
        retype: tuple[str, ...] = (),
    ) -> None:
        """Change what the API sends, as schools' APIs do: add ``new_fields`` (name ->
        value) to every row, and serve the fields in ``retype`` as strings ("123" for 123)."""
        table = self._table(entity)
        for name in retype:
            if name in _VARYING or name not in {f.name for f in table.entity.fields}:
                raise ValueError(f"cannot retype {entity}.{name}")
        table.new_fields.update(new_fields or {})
        table.retyped = table.retyped | frozenset(retype)
        table._pool_list = table._pool_detail = None
        table.invalidate()

    # -- mutations ----------------------------------------------------------------------

    def mutate(
        self,
        entity: str,
        *,
        modify: int = 0,
        add: int = 0,
        delete: int = 0,
        now: datetime,
    ) -> MutationResult:
        """Change the data "now": edit ``modify`` rows, add ``add``, delete ``delete``.

        Edited rows get a new version (other field values change too) and ModifyDate = now;
        added rows get new, larger Ids and Create/ModifyDate = now. Rows are drawn at random
        (seeded by the school's seed and the mutation count) from distinct live rows.
        """
        if min(modify, add, delete) < 0:
            raise ValueError("mutation counts must be >= 0")
        table = self._table(entity)
        live = list(table.live())
        if modify + delete > len(live):
            raise ValueError(f"{entity} has only {len(live)} rows to modify/delete")
        rng = random.Random(self.seed * 7_919 + table.epoch * 104_729 + _stable_hash(entity))
        chosen = rng.sample(live, modify + delete)
        now_us = _epoch_us(now)
        modified = sorted(chosen[:modify])
        for slot in modified:
            table.versions[slot] = table.version(slot) + 1
            table.modify_us[slot] = truncate_us(now_us, table.modify_digits(slot))
        deleted = sorted(chosen[modify:])
        table.deleted.update(deleted)
        added: list[int] = []
        for _ in range(add):
            slot = table.slots
            table.modify_us.append(truncate_us(now_us, (slot * 7) % 8))
            table.create_us.append(truncate_us(now_us, slot % 8))
            if entity == "students":
                table.small.append(2015 + rng.randrange(14))
            elif entity == "notes":
                table.small.append(NOTE_ENTITY_TYPES[rng.randrange(len(NOTE_ENTITY_TYPES))])
            else:
                table.small.append(0)
            added.append(slot)
        table.invalidate()
        return MutationResult(
            modified=tuple(table.id_of(s) for s in modified),
            added=tuple(table.id_of(s) for s in added),
            deleted=tuple(table.id_of(s) for s in deleted),
        )
