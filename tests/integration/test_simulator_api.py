"""The simulator's API surface over real sockets: lists, details, options, filters, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from simulator_support import bearer, get_token, simulator

from extractor.simulator.data import ListFilter
from extractor.simulator.entities import BY_NAME
from extractor.simulator.server import RunningSimulator


@dataclass
class Api:
    running: RunningSimulator
    session: aiohttp.ClientSession
    headers: dict[str, str]

    async def get(self, path: str, **params: Any) -> tuple[int, str, bytes]:
        async with self.session.get(path, params=params, headers=self.headers) as resp:
            return resp.status, resp.content_type, await resp.read()

    async def json(self, path: str, **params: Any) -> Any:
        status, content_type, body = await self.get(path, **params)
        assert (status, content_type) == (200, "application/json"), body[:200]
        return orjson.loads(body)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with simulator() as (running, session):
        token = await get_token(session, running)
        yield Api(running, session, bearer(token))


async def test_list_envelope_and_default_page_size(api: Api) -> None:
    page = await api.json("/api/v2/students")
    total = api.running.sim.data.count("students")
    assert page["PageSize"] == 25
    assert page["PageNumber"] == 1
    assert page["Total"] == total == 1203
    assert page["NumberOfPages"] == 49
    assert len(page["Items"]) == 25


async def test_list_bodies_are_the_data_models_bytes_untouched(api: Api) -> None:
    status, _, body = await api.get("/api/v2/companies", PageSize=7, PageNumber=3)
    assert status == 200
    assert body == api.running.sim.data.list_page("companies", 3, 7, ListFilter())


async def test_page_size_500_is_the_maximum(api: Api) -> None:
    page = await api.json("/api/v2/students", PageSize=500, PageNumber=3)
    assert (page["PageSize"], len(page["Items"])) == (500, 203)
    for bad in ("501", "0", "-5", "abc", "10.5"):
        status, content_type, body = await api.get("/api/v2/students", PageSize=bad)
        assert (status, content_type) == (400, "application/json"), bad
        assert "PageSize" in orjson.loads(body)["Message"]


@pytest.mark.parametrize("bad", ["0", "-1", "x", "2.0"])
async def test_page_number_starts_at_1(api: Api, bad: str) -> None:
    status, _, body = await api.get("/api/v2/students", PageNumber=bad)
    assert status == 400
    assert "PageNumber" in orjson.loads(body)["Message"]


async def test_pages_past_the_end_are_empty_not_errors(api: Api) -> None:
    page = await api.json("/api/v2/students", PageSize=500, PageNumber=4)
    assert page["Items"] == []
    assert page["Total"] == 1203
    assert page["NumberOfPages"] == 3


async def test_routes_and_parameter_names_are_case_insensitive(api: Api) -> None:
    _, _, canonical = await api.get("/api/v2/students", PageSize=7, PageNumber=2)
    for path, params in [
        ("/Api/V2/Students", {"pagesize": 7, "PAGENUMBER": 2}),
        ("/API/v2/STUDENTS/", {"pageSize": 7, "pageNumber": 2}),
    ]:
        status, _, body = await api.get(path, **params)
        assert (status, body) == (200, canonical)
    detail = await api.json("/Api/V2/Students/10000000")
    assert detail["Id"] == 10000000
    options = await api.json("/api/V2/lookups/200/Options")
    assert isinstance(options, list)


async def test_walking_every_page_yields_every_id_once(api: Api) -> None:
    ids: list[int] = []
    for number in range(1, 4):
        page = await api.json("/api/v2/students", PageSize=500, PageNumber=number)
        ids += [item["Id"] for item in page["Items"]]
    assert ids == api.running.sim.data.ids("students")
    assert api.running.sim.ledger.pages["students"] == 3


async def test_lists_carry_a_subset_and_details_every_field(api: Api) -> None:
    entity = BY_NAME["students"]
    item = (await api.json("/api/v2/students", PageSize=1))["Items"][0]
    detail = await api.json(f"/api/v2/students/{item['Id']}")
    list_only = {f.name for f in entity.list_fields}
    every = {f.name for f in entity.fields}
    assert set(item) <= list_only
    assert set(detail) == every
    assert set(detail) - set(item)  # the detail has more
    assert {k: detail[k] for k in item} == item
    assert detail == next(api.running.sim.data.ground_truth("students"))
    assert api.running.sim.ledger.details["students"] == 1


async def test_unknown_ids_and_routes_are_404(api: Api) -> None:
    for path in (
        "/api/v2/students/1",
        "/api/v2/students/abc",
        "/api/v2/unicorns",
        "/api/v3/students",
        "/api/v2/lookups/999999/options",
        "/nothing/here",
    ):
        status, content_type, body = await api.get(path)
        assert (status, content_type) == (404, "application/json"), path
        assert orjson.loads(body)["Message"]


async def test_lookup_options_are_a_bare_array(api: Api) -> None:
    lookups = await api.json("/api/v2/lookups", PageSize=500)
    lookup_id = lookups["Items"][0]["Id"]
    options = await api.json(f"/api/v2/lookups/{lookup_id}/options")
    assert isinstance(options, list) and options
    assert all(set(o) == {"Id", "Name"} for o in options)


async def test_modify_date_filters_match_the_data_model(api: Api) -> None:
    data = api.running.sim.data
    since = datetime(2024, 1, 1, tzinfo=UTC)
    until = datetime(2025, 6, 30, 12, tzinfo=UTC)
    for entity in ("companies", "contacts", "notes"):
        page = await api.json(f"/api/v2/{entity}", ModifyFromDate="2024-01-01T00:00:00")
        expected = data.count(entity, ListFilter(modify_from=since))
        assert page["Total"] == expected
        assert 0 < expected < data.count(entity)
        both = await api.json(
            f"/api/v2/{entity}",
            modifyFromDate="2024-01-01T00:00:00.0000000Z",
            MODIFYTODATE="2025-06-30T12:00:00",
        )
        assert both["Total"] == data.count(entity, ListFilter(modify_from=since, modify_to=until))
        assert all(
            "2024-01-01T00:00:00" <= item["ModifyDate"] <= "2025-06-30T12:00:00"
            for item in both["Items"]
        )


async def test_bad_modify_date_is_400(api: Api) -> None:
    status, _, body = await api.get("/api/v2/companies", ModifyFromDate="last tuesday")
    assert status == 400
    assert "date" in orjson.loads(body)["Message"]


async def test_year_and_entity_type_filters(api: Api) -> None:
    data = api.running.sim.data
    year = (await api.json("/api/v2/students", PageSize=1))["Items"][0]["GraduationYearId"]
    students = await api.json("/api/v2/students", year=year, PageSize=500)
    assert students["Total"] == data.count("students", ListFilter(year=year))
    assert all(item["GraduationYearId"] == year for item in students["Items"])
    notes = await api.json("/api/v2/notes", EntityTypeId=2201, PageSize=500)
    assert notes["Total"] == data.count("notes", ListFilter(entity_type_id=2201))
    assert all(item["PrimaryEntityTypeID"] == 2201 for item in notes["Items"])


async def test_filters_an_entity_lacks_are_ignored(api: Api) -> None:
    """Lookups have no ModifyDate and companies no year: like unknown parameters."""
    data = api.running.sim.data
    lookups = await api.json("/api/v2/lookups", ModifyFromDate="2030-01-01T00:00:00")
    assert lookups["Total"] == data.count("lookups")
    companies = await api.json("/api/v2/companies", year=1999, EntityTypeId=1)
    assert companies["Total"] == data.count("companies")


async def test_documentation_page(api: Api) -> None:
    status, content_type, body = await api.get("/api/v2/documentation")
    assert (status, content_type) == (200, "text/html")
    text = body.decode()
    for entity in api.running.sim.data.entities:
        assert f"/api/v2/{entity}" in text


async def test_only_get_is_allowed(api: Api) -> None:
    async with api.session.post("/api/v2/students", headers=api.headers, json={}) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET"


async def test_ledger_endpoint_needs_no_auth_and_is_not_counted(api: Api) -> None:
    await api.get("/api/v2/students")
    await api.get("/api/v2/students/1")
    async with aiohttp.ClientSession(api.running.base_url) as anonymous:
        async with anonymous.get("/_sim/ledger") as resp:
            assert resp.status == 200
            ledger = await resp.json()
        async with anonymous.get("/_SIM/Ledger") as resp:
            again = await resp.json()
    assert ledger["total"] == again["total"] == 3  # token + list + detail
    assert ledger["requests"] == {
        "/api/client/generateAuthenticationToken": {"200": 1},
        "/api/v2/students": {"200": 1},
        "/api/v2/students/{id}": {"404": 1},
    }
    assert ledger["pages"] == {"students": 1}
    assert ledger["tokens_issued"] == 1
    assert ledger["used_today"] == 3
    assert ledger["daily_limit"] == 5000
    assert ledger["max_in_flight"] == 1
    assert ledger["per_day"] == {"2026-01-05": 3}


async def test_mutate_endpoint_changes_the_data(api: Api) -> None:
    before = (await api.json("/api/v2/companies"))["Total"]
    async with api.session.post(
        "/_sim/mutate", json={"entity": "companies", "modify": 2, "add": 3, "delete": 1}
    ) as resp:
        assert resp.status == 200
        result = await resp.json()
    assert (len(result["modified"]), len(result["added"]), len(result["deleted"])) == (2, 3, 1)
    after = await api.json("/api/v2/companies")
    assert after["Total"] == before + 3 - 1
    status, _, _ = await api.get(f"/api/v2/companies/{result['deleted'][0]}")
    assert status == 404
    assert api.running.sim.ledger.total == 4  # token + 2 lists + 1 detail; mutate not counted


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"entity": "unicorns"}',
        b'{"entity": "companies", "add": "many"}',
        b'{"entity": "companies", "delete": 10000000}',
    ],
)
async def test_mutate_rejects_bad_requests(api: Api, body: bytes) -> None:
    async with api.session.post("/_sim/mutate", data=body) as resp:
        assert resp.status == 400
    async with api.session.get("/_sim/mutate") as resp:
        assert resp.status == 405
