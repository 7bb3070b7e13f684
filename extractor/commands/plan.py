"""``twelvetwenty plan``: how big the job is and how many days of budget it needs.

At most one request per entity: the first page of each entity whose Total is not known
yet. That page is spooled, so the extraction that follows does not fetch it again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import TextIO

from extractor.commands.extract import settings_from_args
from extractor.commands.options import add_job_arguments, add_site_arguments, add_state_arguments
from extractor.core.budget import BudgetPolicy, available, plan, used
from extractor.durable import durable_extraction, settings_policy
from extractor.errors import EXIT_OK
from extractor.results import EntityPlan
from extractor.state.ledger import format_when


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_site_arguments(parser)
    add_job_arguments(parser)
    add_state_arguments(parser)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest % 60} s" if minutes else f"{rest % 60} s"


def print_plan(
    plans: dict[str, EntityPlan],
    *,
    stream: TextIO,
    ledger: list[float],
    now: datetime,
    policy_text: str,
    job_text: str,
    seconds_per_request: float | None,
    concurrency: int,
    policy: BudgetPolicy,
) -> None:
    lines = [job_text, ""]
    header = f"{'entity':<16}{'total':>10}{'pages':>8}{'requests left':>15}  window"
    lines += [header, "-" * len(header)]
    left_total = 0
    for name, p in plans.items():
        total = "?" if p.total is None else str(p.total)
        pages = "?" if p.pages is None else str(p.pages)
        left = "?" if p.left is None else str(p.left)
        left_total += p.left or 0
        lines.append(f"{name:<16}{total:>10}{pages:>8}{left:>15}  {p.window}")
    ts = now.timestamp()
    schedule = plan(ledger, ts, policy, left_total)
    lines.append("")
    lines.append(f"requests left for the job: {left_total}")
    lines.append(
        f"budget: {available(ledger, ts, policy)} of {policy.capacity} free now "
        f"({used(ledger, ts, policy)} used; {policy_text})"
    )
    if left_total == 0:
        lines.append("nothing left to fetch: the next extract only converts and publishes")
    else:
        today = schedule.per_day[0] if schedule.per_day else 0
        lines.append(
            f"days needed: {schedule.days} (the first allows {today} of {left_total}; "
            f"then {', '.join(str(n) for n in schedule.per_day[1:]) or 'nothing more'})"
        )
        eta = schedule.eta
        if seconds_per_request:
            eta += seconds_per_request * min(left_total, policy.capacity) / concurrency
            lines.append(
                f"ETA: {format_when(eta)} (budget permitting; about "
                f"{_duration(seconds_per_request * left_total / concurrency)} of fetching at "
                f"{seconds_per_request:.2f} s per request, {concurrency} in flight)"
            )
        else:
            lines.append(f"ETA: {format_when(eta)} (when the budget allows the last request)")
    stream.write("\n".join(lines) + "\n")


async def _plan(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    with durable_extraction(settings) as (extraction, store):
        plans = await extraction.probe()
        policy = settings_policy(settings)
        now = datetime.now(UTC)
        ledger = store.ledger_times(now.timestamp(), policy)
        job = extraction.job
        assert job is not None
        state = "continued" if extraction.resumed else "new"
        job_text = (
            f"plan for {settings.site} ({settings.base_url}): job {job.job_id} ({state}, frozen "
            f"at {job.started_at:%Y-%m-%d %H:%M:%S} UTC); {extraction.requests_sent} "
            "request(s) spent on this plan"
        )
        window = "rolling 24 hours" if policy.window.value == "rolling" else "UTC day"
        reserve = f", {policy.reserve} reserved for other integrations" if policy.reserve else ""
        seconds = extraction.request_seconds
        print_plan(
            plans,
            stream=sys.stdout,
            ledger=ledger,
            now=now,
            policy_text=f"{policy.limit} per {window}{reserve}",
            job_text=job_text,
            seconds_per_request=sum(seconds) / len(seconds) if seconds else None,
            concurrency=settings.concurrency,
            policy=policy,
        )
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_plan(args))
