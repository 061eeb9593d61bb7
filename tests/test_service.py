"""The task service on an in-memory store and a fake clock: validation, quota, update
merge, max_runs, retries dropped by changes, and writes that never overwrite a claim."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest

from langgraph_scheduler import (
    ConversationTrigger,
    Cron,
    Interval,
    InvalidPayload,
    InvalidSchedule,
    InvalidTask,
    Once,
    QuotaExceeded,
    SchedulerError,
    SchedulerLimits,
    TaskConflict,
    TaskNotFound,
    TaskOptions,
)
from langgraph_scheduler._service import TaskService
from langgraph_scheduler.models import Task, TaskRunRecord
from langgraph_scheduler.store import Finish, Store, open_store
from langgraph_scheduler.testing import FakeClock
from langgraph_scheduler.webhooks import Webhook

from .helpers import HOLDER, T0, at, claim_one, every_minute


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    opened = open_store("sqlite://")
    await opened.setup()
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def service(store: Store, clock: FakeClock) -> TaskService:
    return TaskService(store, clock=clock)


async def fail_with_retry(store: Store, task: Task, when: datetime) -> None:
    """Claim the task's fire due at ``when`` and fail it, leaving a retry waiting."""
    run = await claim_one(store, when)
    await store.finish_runs([Finish(run, "error", error="boom")], now=when, holder=HOLDER)
    assert len(await store.pending_retries(task.id)) == 1


# -- create --------------------------------------------------------------------------


async def test_create_stores_an_active_task_due_at_its_first_fire(
    service: TaskService, store: Store
) -> None:
    task = await service.create(
        name="  standup  ",
        schedule=Cron("0 9 * * *"),
        trigger={"prompt": "Summarise"},
        thread_id="alice-main",
        owner="alice",
    )

    assert (task.name, task.owner, task.state) == ("standup", "alice", "active")
    assert (task.thread_mode, task.thread_id) == ("continue", "alice-main")
    assert task.schedule is not None and task.schedule.tz == "UTC"
    assert task.next_run_at == datetime(2027, 3, 2, 9, 0, tzinfo=timezone.utc)
    assert task.trigger == ConversationTrigger(prompt="Summarise")
    assert await store.get_task(task.id) == task


async def test_an_interval_is_pinned_to_its_first_fire(service: TaskService) -> None:
    task = await every_minute(service)

    assert isinstance(task.schedule, Interval)
    assert task.schedule.start == at(60)
    assert task.next_run_at == at(60)


async def test_a_paused_create_has_no_next_run(service: TaskService) -> None:
    task = await every_minute(service, paused=True)

    assert (task.state, task.next_run_at) == ("paused", None)
    assert task.upcoming_runs() == []


async def test_upcoming_runs_lists_as_many_as_asked_within_a_bound(service: TaskService) -> None:
    task = await every_minute(service)

    assert task.upcoming_runs(0) == []
    assert task.upcoming_runs(1) == [at(60)]
    assert len(task.upcoming_runs(1000)) == 1000
    for n in (-1, 1001, 10**9, 2.5, "3", True):
        with pytest.raises(InvalidTask, match="a whole number from 0 to 1,000, got"):
            task.upcoming_runs(n)  # type: ignore[arg-type]


async def test_a_task_stored_with_a_blank_owner_before_stays_readable(
    service: TaskService, store: Store
) -> None:
    # A blank owner is refused at a create now (it was stored); a row that has one still
    # reads, lists under that owner and all owners, and can be deleted.
    task = await every_minute(service)
    await store.save_task(
        task.model_copy(update={"owner": "  "}), expected_version=task.version, columns=["owner"]
    )
    assert (await service.get(task.id, owner="  ")).owner == "  "
    assert [t.id for t in await service.find(owner="  ")] == [task.id]
    assert [t.owner for t in await service.find()] == ["  "]
    assert (await service.delete(task.id, owner="  ")).task.id == task.id


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"name": "   "}, InvalidTask, "task name must not be empty"),
        ({"name": "x" * 201}, InvalidTask, "task name is 201 characters; the limit is 200"),
        ({"owner": ""}, InvalidTask, r"owner must be a non-blank string \(.*\), got ''"),
        ({"owner": " \t "}, InvalidTask, r"owner must be a non-blank string \(.*\), got ' \\t '"),
        ({"owner": None}, InvalidTask, r"owner must be a non-blank string \(.*\), got None"),
        ({"owner": 7}, InvalidTask, r"owner must be a non-blank string \(.*\), got an int"),
        ({"max_runs": 0}, InvalidTask, "max_runs must be a whole number from 1 to .*, got 0"),
        (
            {"max_runs": 2**31},
            InvalidTask,
            "max_runs must be a whole number from 1 to 1,000,000, got 2147483648",
        ),
        ({"max_runs": "5"}, InvalidTask, "max_runs must be a whole number .* got '5'"),
        ({"max_runs": True}, InvalidTask, "max_runs must be a whole number .* got True"),
        (
            {"schedule": "every day at 9:00"},
            InvalidSchedule,
            r"schedule must be a Cron, Interval or Once, got a str; for text .* use parse_schedule",
        ),
        (
            {"schedule": {"kind": "interval", "seconds": 60}},
            InvalidSchedule,
            r"schedule must be a Cron, Interval or Once, got a dict; build one from its fields",
        ),
        ({"schedule": None}, InvalidSchedule, "^schedule must be a Cron, .* Once, got None$"),
        ({"options": 5}, InvalidTask, r"options must be a TaskOptions .*, got an int$"),
        ({"name": 5}, InvalidTask, "^task name must be a string, got an int$"),
        ({"thread_id": 5}, InvalidTask, r"^thread_id must be a string \(or None .*\), got an int$"),
        (
            {"options": {"retries": -1}},
            InvalidTask,
            "invalid task options: field 'retries': Input should be greater than or equal to 0",
        ),
        (
            {"options": {"retry": 1}},
            InvalidTask,
            r"invalid task options: unknown field 'retry' \(allowed: misfire, ",
        ),
        ({"thread_id": "  "}, InvalidTask, "thread_id must not be blank; pass None"),
        ({"thread_id": "t" * 257}, InvalidTask, "thread_id is 257 characters; the limit is 256"),
        ({"thread_id": "a\x00b"}, InvalidTask, "thread_id must not contain NUL characters"),
        ({"trigger": ""}, InvalidPayload, "prompt"),
        ({"trigger": "a\x00b"}, InvalidPayload, "the prompt holds text no database can store"),
        (
            {"trigger": {"prompt": "hi", "system_addon": "\x00"}},
            InvalidPayload,
            "the system_addon holds text no database can store",
        ),
        ({"trigger": {"prompt": "hi", "when": "now"}}, InvalidPayload, "when"),
        ({"schedule": Once(at(-1))}, InvalidSchedule, "is in the past: it is now 2027-03-01"),
        (
            {"schedule": Interval(seconds=60, start=at(-600), end=at(-60), tz="UTC")},
            InvalidSchedule,
            "the schedule never fires: its end 2027-03-01 11:59",
        ),
    ],
)
async def test_create_refuses_invalid_arguments_with_a_helpful_message(
    service: TaskService, store: Store, changes: dict[str, Any], error: type, message: str
) -> None:
    arguments: dict[str, Any] = {"name": "t", "schedule": Interval(seconds=60), "trigger": "hi"}

    with pytest.raises(error, match=message):
        await service.create(**(arguments | changes))
    assert (await store.list_tasks()).tasks == []


_END = at(86400 * 365)


def _definition(**changes: Any) -> dict[str, Any]:
    """The arguments of a create under a fixed id, every field of its definition set."""
    return {
        "name": "standup",
        "schedule": Cron("0 9 * * 1-5", tz="Europe/Berlin", end=_END),
        "trigger": {"prompt": "Summarise", "system_addon": "Be brief.", "timeout_secs": 60},
        "thread_id": "alice-main",
        "owner": "alice",
        "max_runs": 10,
        "options": TaskOptions(on_busy="skip", retries=2),
        "task_id": "standup-1",
        **changes,
    }


async def test_a_create_again_with_its_definition_returns_the_stored_task(
    service: TaskService, clock: FakeClock
) -> None:
    first = await service.create(**_definition())
    paused = await service.pause(first.id)
    await clock.advance(3600)

    # State is not definition: the task stays paused, nothing is written.
    again = await service.create(**_definition(paused=False))
    assert again == paused and again.state == "paused"

    ticking = await every_minute(service, task_id="tick")
    await clock.advance(90)  # an interval without start matches the phase pinned first
    assert await every_minute(service, task_id="tick") == ticking


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"name": "stand-up"}, ("name",)),
        ({"schedule": Cron("30 9 * * 1-5", tz="Europe/Berlin", end=_END)}, ("schedule",)),
        ({"schedule": Cron("0 9 * * 1-5", tz="Europe/Berlin")}, ("schedule",)),
        ({"trigger": {"prompt": "Summarise", "system_addon": "Be brief."}}, ("trigger",)),
        ({"thread_id": None}, ("thread_id",)),
        ({"options": None}, ("options",)),
        ({"max_runs": None, "name": "other"}, ("name", "max_runs")),
    ],
)
async def test_a_create_again_with_another_definition_is_refused(
    service: TaskService, store: Store, changes: dict[str, Any], fields: tuple[str, ...]
) -> None:
    first = await service.create(**_definition())

    with pytest.raises(TaskConflict, match="update_task") as caught:
        await service.create(**_definition(**changes))
    assert caught.value.fields == fields and caught.value.task_id == "standup-1"
    assert f"another {', '.join(fields)}:" in str(caught.value)
    assert isinstance(caught.value, InvalidTask)
    assert await store.get_task(first.id) == first


@pytest.mark.parametrize("line", ["0  9 * * 1-5", "0 9 * * MON-FRI", "0 9 * * mon,tue,wed,thu,fri"])
async def test_a_create_again_with_its_cron_line_written_otherwise_returns_the_stored_task(
    service: TaskService, line: str
) -> None:
    first = await service.create(**_definition())

    again = await service.create(**_definition(schedule=Cron(line, tz="Europe/Berlin", end=_END)))
    assert again == first  # as stored, its line as first written


async def test_a_conflict_names_the_schedule_only_when_it_fires_otherwise(
    service: TaskService,
) -> None:
    await service.create(**_definition())
    respelled = Cron("0 9 * * Mon-Fri", tz="Europe/Berlin", end=_END)

    with pytest.raises(TaskConflict) as caught:
        await service.create(**_definition(schedule=respelled, name="stand-up"))
    assert caught.value.fields == ("name",)
    assert "another name:" in str(caught.value)
    # Every day: both day fields restricted, so a day matching either one fires.
    every_day = Cron("0 9 1-31 * 1-5", tz="Europe/Berlin", end=_END)
    with pytest.raises(TaskConflict, match="another schedule:") as caught:
        await service.create(**_definition(schedule=every_day))
    assert caught.value.fields == ("schedule",)


async def test_a_task_updated_since_is_not_its_first_definition(service: TaskService) -> None:
    first = await service.create(**_definition())
    await service.update(first.id, schedule=Cron("0 10 * * 1-5"))

    with pytest.raises(TaskConflict) as caught:
        await service.create(**_definition())
    assert caught.value.fields == ("schedule",)


async def test_a_one_off_created_again_after_its_time_is_the_stored_task(
    service: TaskService, clock: FakeClock
) -> None:
    first = await service.create(name="once", schedule=Once(at(60)), trigger="hi", task_id="o")
    await clock.advance(120)

    assert await service.create(name="once", schedule=Once(at(60)), trigger="hi", task_id="o") == (
        first
    )
    with pytest.raises(TaskConflict, match="another schedule"):
        await service.create(name="once", schedule=Once(at(61)), trigger="hi", task_id="o")


async def test_concurrent_creates_of_one_id_store_one_definition(
    service: TaskService, store: Store
) -> None:
    results = await asyncio.gather(
        *(service.create(**_definition(name=f"standup {n}")) for n in range(4)),
        return_exceptions=True,
    )

    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(made) == 1 and len(refused) == 3
    assert all(isinstance(r, TaskConflict) and r.fields == ("name",) for r in refused)
    assert (await store.list_tasks()).tasks == made


async def test_concurrent_creates_never_exceed_the_quota(
    service: TaskService, store: Store
) -> None:
    results = await asyncio.gather(
        *(every_minute(service, name=f"t{i}", owner="alice", max_active=5) for i in range(20)),
        return_exceptions=True,
    )

    assert sum(isinstance(r, Task) for r in results) == 5
    refused = [r for r in results if not isinstance(r, Task)]
    assert len(refused) == 15 and all(isinstance(r, QuotaExceeded) for r in refused)
    assert "owner 'alice' already has 5 active tasks" in str(refused[0])
    assert await store.count_tasks(owner="alice", states=["active"]) == 5


async def test_the_quota_counts_active_tasks_of_the_owner_only(service: TaskService) -> None:
    await every_minute(service, owner="alice", max_active=1)
    await every_minute(service, owner="alice", paused=True, max_active=1)
    await every_minute(service, owner="bob", max_active=1)

    with pytest.raises(QuotaExceeded):
        await every_minute(service, owner="alice", max_active=1)


# -- update --------------------------------------------------------------------------


async def test_update_changes_only_what_it_is_given(service: TaskService, clock: FakeClock) -> None:
    task = await every_minute(service, trigger={"prompt": "tick", "system_addon": "be brief"})
    await clock.advance(30)

    renamed = await service.update(task.id, name="renamed")
    timed = await service.update(task.id, timeout_secs=90)

    assert renamed.name == "renamed" and renamed.payload == task.payload
    assert timed.trigger == ConversationTrigger(
        prompt="tick", system_addon="be brief", timeout_secs=90
    )
    assert (timed.schedule, timed.next_run_at) == (task.schedule, at(60))
    assert (timed.version, timed.updated_at) == (2, at(30))


async def test_update_with_a_trigger_and_a_timeout_merges_them(service: TaskService) -> None:
    task = await every_minute(service)

    updated = await service.update(task.id, trigger="new prompt", timeout_secs=45)

    assert updated.trigger == ConversationTrigger(prompt="new prompt", timeout_secs=45)


async def test_a_new_schedule_takes_effect_from_now(service: TaskService, clock: FakeClock) -> None:
    task = await every_minute(service)
    await clock.advance(30)

    updated = await service.update(task.id, schedule=Interval(seconds=300))

    assert updated.next_run_at == at(330)
    assert updated.upcoming_runs(2) == [at(330), at(630)]


async def test_pages_need_a_positive_limit_and_no_negative_offset(service: TaskService) -> None:
    task = await every_minute(service)

    for limit, offset in ((0, 0), (-1, 0), (10, -1)):
        with pytest.raises(InvalidTask, match="a page needs a whole limit, 1 or more, and a whole"):
            await service.find(limit=limit, offset=offset)
    with pytest.raises(InvalidTask, match="a page needs a whole limit, 1 or more"):
        await service.history(task.id, limit=-1)
    assert [t.id for t in await service.find(limit=1)] == [task.id]


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: TaskOptions(retries=-1), InvalidTask, "invalid task options: field 'retries'"),
        (
            lambda: TaskOptions(retry=1),  # type: ignore[call-arg]
            InvalidTask,
            "invalid task options: unknown field 'retry'",
        ),
        (
            lambda: TaskOptions(webhook_url="ftp://u:secret@example.com/x"),
            InvalidTask,
            "invalid task options: field 'webhook_url': a webhook URL must be absolute",
        ),
        (
            lambda: ConversationTrigger(prompt=""),
            InvalidPayload,
            "invalid task payload: field 'prompt'",
        ),
        (
            lambda: ConversationTrigger(),  # type: ignore[call-arg]
            InvalidPayload,
            "field 'prompt' is required",
        ),
        (
            lambda: SchedulerLimits(max_active_tasks_per_owner=0),
            InvalidTask,
            "invalid scheduler limits: field 'max_active_tasks_per_owner'",
        ),
        (lambda: Webhook(url="hooks"), InvalidTask, "invalid webhook: field 'url': a webhook URL"),
    ],
)
def test_models_built_by_hand_refuse_a_bad_field_with_the_package_errors(
    build: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message) as refused:
        build()
    assert isinstance(refused.value, SchedulerError) and isinstance(refused.value, ValueError)
    assert "secret" not in str(refused.value)  # inputs stay out of the message


async def test_update_refuses_arguments_of_the_wrong_kind_and_changes_nothing(
    service: TaskService, store: Store
) -> None:
    task = await every_minute(service)
    refused: list[tuple[dict[str, Any], type, str]] = [
        ({"schedule": "every 5 minutes"}, InvalidSchedule, "got a str; for text"),
        ({"schedule": {"kind": "interval", "seconds": 60}}, InvalidSchedule, "got a dict; "),
        ({"options": "retries=3"}, InvalidTask, r"must be a TaskOptions .*, got a str$"),
        ({"options": {"misfire": "later"}}, InvalidTask, "field 'misfire': Input should be"),
        ({"max_runs": "5"}, InvalidTask, "got '5'"),
    ]
    for changes, error, message in refused:
        with pytest.raises(error, match=message):
            await service.update(task.id, **changes)
    assert await store.get_task(task.id) == task

    changed = await service.update(task.id, options={"retries": 4})  # a dict, as create takes
    assert changed.options == TaskOptions(retries=4)


async def test_update_refuses_bad_values_and_other_owners(service: TaskService) -> None:
    task = await every_minute(service, owner="alice")

    with pytest.raises(InvalidTask, match="max_runs must be a whole number from 1 to .*, got 0"):
        await service.update(task.id, max_runs=0)
    with pytest.raises(InvalidPayload, match="the prompt holds text no database can store"):
        await service.update(task.id, trigger_changes={"prompt": "a\x00b"})
    with pytest.raises(InvalidSchedule, match="in the past"):
        await service.update(task.id, schedule=Once(at(-10)))
    with pytest.raises(TaskNotFound, match="no task with id"):
        await service.update(task.id, owner="bob", name="mine now")
    assert (await service.get(task.id)).version == 0


async def test_lowering_max_runs_to_the_runs_done_completes_at_once(
    service: TaskService, store: Store
) -> None:
    task = await every_minute(service)
    await claim_one(store, at(60))
    await claim_one(store, at(120))

    updated = await service.update(task.id, max_runs=2)

    assert (updated.state, updated.next_run_at, updated.run_count) == ("completed", None, 2)
    assert updated.upcoming_runs() == []
    stored = await service.get(task.id)
    assert (stored.state, stored.next_run_at) == ("completed", None)
    assert (
        await store.claim_due(
            as_of=at(600), limit=10, holder="h", lease_until=at(630), started_at=T0
        )
        == []
    )


async def test_max_runs_above_the_runs_done_limits_the_upcoming_runs(
    service: TaskService, store: Store
) -> None:
    task = await every_minute(service)
    await claim_one(store, at(60))

    updated = await service.update(task.id, max_runs=3)

    assert updated.state == "active"
    assert updated.upcoming_runs() == [at(120), at(180)]


async def test_raising_max_runs_reactivates_within_the_quota(
    service: TaskService, store: Store, clock: FakeClock
) -> None:
    task = await every_minute(service, owner="alice", max_runs=1)
    await claim_one(store, at(60))
    await every_minute(service, owner="alice", name="other")
    await clock.set(at(90))

    with pytest.raises(QuotaExceeded):
        await service.update(task.id, max_runs=2, max_active=1)
    assert (await service.get(task.id)).state == "completed"
    updated = await service.update(task.id, max_runs=2, max_active=2)

    assert (updated.state, updated.next_run_at) == ("active", at(120))
    assert updated.upcoming_runs() == [at(120)]


async def test_update_drops_waiting_retries(service: TaskService, store: Store) -> None:
    task = await every_minute(service)
    await fail_with_retry(store, task, at(60))

    await service.update(task.id, options=TaskOptions(retries=5))

    assert await store.pending_retries(task.id) == []


# -- pause, resume, delete -------------------------------------------------------------


async def test_pause_stops_firing_and_drops_waiting_retries(
    service: TaskService, store: Store
) -> None:
    task = await every_minute(service)
    await fail_with_retry(store, task, at(60))

    paused = await service.pause(task.id)

    assert (paused.state, paused.next_run_at) == ("paused", None)
    assert await store.pending_retries(task.id) == []
    assert await store.due_times(until=at(3600)) == []
    assert await service.pause(task.id) == paused  # pausing again changes nothing


async def test_resume_fires_from_the_next_occurrence_after_now(
    service: TaskService, clock: FakeClock
) -> None:
    task = await every_minute(service)
    await service.pause(task.id)
    await clock.set(at(610))

    resumed = await service.resume(task.id)

    assert (resumed.state, resumed.next_run_at) == ("active", at(660))


async def test_resume_drops_retries_left_by_a_direct_pause(
    service: TaskService, store: Store
) -> None:
    task = await every_minute(service)
    await fail_with_retry(store, task, at(60))
    current = await service.get(task.id)
    paused = current.model_copy(update={"state": "paused", "next_run_at": None})
    assert (
        await store.save_task(
            paused, expected_version=current.version, columns=["state", "next_run_at"]
        )
        == "saved"
    )

    await service.resume(task.id)

    assert await store.pending_retries(task.id) == []


async def test_resume_refuses_a_task_that_ran_its_max_runs(
    service: TaskService, store: Store
) -> None:
    task = await every_minute(service, max_runs=1)
    await claim_one(store, at(60))
    assert (await service.get(task.id)).state == "completed"

    with pytest.raises(InvalidTask, match="already ran its max_runs=1; raise max_runs"):
        await service.resume(task.id)


async def test_resume_within_the_quota(service: TaskService) -> None:
    await every_minute(service, owner="alice")
    paused = await every_minute(service, owner="alice", paused=True)

    with pytest.raises(QuotaExceeded, match="already has 1 active tasks"):
        await service.resume(paused.id, max_active=1)
    assert (await service.resume(paused.id, max_active=2)).state == "active"


async def test_delete_removes_the_task_and_its_retries(service: TaskService, store: Store) -> None:
    task = await every_minute(service, owner="alice")
    await fail_with_retry(store, task, at(60))

    with pytest.raises(TaskNotFound):
        await service.delete(task.id, owner="bob")
    deleted = await service.delete(task.id, owner="alice")

    assert deleted.task.id == task.id and deleted.running == 0
    assert await store.pending_retries(task.id) == []
    with pytest.raises(TaskNotFound, match=repr(task.id)):
        await service.get(task.id)


# -- writes never overwrite a concurrent claim -------------------------------------------


def claim_before_the_next_write(
    store: Store, monkeypatch: pytest.MonkeyPatch, when: datetime
) -> list[TaskRunRecord]:
    """Let a claim land between the service's read of a task and its write."""
    save = store.save_task
    claimed: list[TaskRunRecord] = []

    async def claim_then_save(task: Task, **kwargs: Any) -> Any:
        if not claimed:
            claimed.append(await claim_one(store, when))
        return await save(task, **kwargs)

    monkeypatch.setattr(store, "save_task", claim_then_save)
    return claimed


async def test_an_update_racing_a_claim_is_applied_on_top_of_it(
    service: TaskService, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = await every_minute(service)
    await clock.set(at(60))
    claimed = claim_before_the_next_write(store, monkeypatch, at(60))

    updated = await service.update(task.id, name="renamed")

    assert len(claimed) == 1
    stored = await service.get(task.id)
    assert stored == updated
    assert (stored.name, stored.run_count, stored.next_run_at) == ("renamed", 1, at(120))
    assert stored.version == 2  # the claim's write, then the update's


async def test_a_new_schedule_racing_a_claim_replaces_the_claimed_next_run(
    service: TaskService, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = await every_minute(service)
    await clock.set(at(60))
    claim_before_the_next_write(store, monkeypatch, at(60))

    await service.update(task.id, schedule=Interval(seconds=300))

    stored = await service.get(task.id)
    assert isinstance(stored.schedule, Interval) and stored.schedule.seconds == 300
    assert (stored.run_count, stored.next_run_at) == (1, at(360))
    assert [r.scheduled_for for r in await store.history(task.id)] == [at(60)]


async def test_a_pause_racing_a_claim_keeps_the_claimed_run(
    service: TaskService, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = await every_minute(service)
    await clock.set(at(60))
    claim_before_the_next_write(store, monkeypatch, at(60))

    await service.pause(task.id)

    stored = await service.get(task.id)
    assert (stored.state, stored.next_run_at, stored.run_count) == ("paused", None, 1)
    (run,) = await store.history(task.id)
    assert run.running
