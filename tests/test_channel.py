"""ConversationRequest / ConversationResponse and their mapping to outcomes."""

from __future__ import annotations

import asyncio

from langgraph_scheduler import (
    ConversationRequest,
    Error,
    Interrupted,
    Skipped,
    Success,
    TaskSource,
    Timeout,
)
from langgraph_scheduler.bridge import SUMMARY_MAX_CHARS, to_result


def _source() -> TaskSource:
    return TaskSource(
        task_id="t1",
        task_name="standup",
        run_id="r1",
        scheduled_for="2026-11-26T09:00:00+00:00",
        attempt=1,
        trigger="schedule",
    )


async def test_request_carries_a_reply_future_and_reads_well() -> None:
    request = ConversationRequest(
        task_id="t1", run_id="r1", thread_id="alice", prompt="Summarise " * 20, source=_source()
    )
    assert isinstance(request.reply, asyncio.Future) and not request.reply.done()
    text = repr(request)
    assert text.startswith("ConversationRequest(task_id='t1', run_id='r1', thread_id='alice'")
    assert "…" in text and "reply" not in text
    request.reply.set_result(Success("hi"))
    assert await request.reply == Success("hi")


def test_responses_have_readable_reprs() -> None:
    assert repr(Success("done")) == "Success('done')"
    assert repr(Error("boom")) == "Error('boom')"
    assert repr(Timeout(2.5)) == "Timeout(after_secs=2.5)"
    assert repr(Interrupted("stopped")) == "Interrupted('stopped')"
    assert repr(Skipped("busy")) == "Skipped('busy')"


def test_responses_map_to_one_outcome_each() -> None:
    assert to_result(Success("hi", checkpoint_id="c1")).model_dump() == {
        "outcome": "success",
        "summary": "hi",
        "error": None,
        "checkpoint_id": "c1",
    }
    assert to_result(Error("boom")).outcome == "error"
    assert to_result(Error("boom")).error == "boom"
    timeout = to_result(Timeout(3))
    assert timeout.outcome == "timeout" and "within 3s" in (timeout.error or "")
    assert to_result(Interrupted("stopped")).outcome == "interrupted"
    assert to_result(Skipped("overloaded")).outcome == "skipped"


def test_long_answers_are_truncated_in_the_summary() -> None:
    summary = to_result(Success("x" * (SUMMARY_MAX_CHARS + 50))).summary
    assert summary is not None and len(summary) == SUMMARY_MAX_CHARS and summary.endswith("…")
