"""MovingDeadline: moving the due time costs no timer work, and it expires like `asyncio.timeout`.

Spans are generous (the test machine is shared and loaded); nothing here asserts how long anything took."""

from __future__ import annotations

import asyncio

import pytest

from proxy.gateway.deadline import MovingDeadline


async def test_a_deadline_kept_moving_never_expires_and_moves_touch_no_timer() -> None:
    loop = asyncio.get_running_loop()
    async with MovingDeadline(loop.time() + 1.0, shortest=0.02) as deadline:
        for _ in range(20):  # the timer wakes (every 20 ms) and re-arms; the due time stays ahead
            await asyncio.sleep(0.01)
            armed = deadline._handle
            deadline.due = loop.time() + 1.0
            deadline.due = loop.time() + 2.0
            assert deadline._handle is armed  # a move is a float store, not a timer operation


async def test_it_expires_once_the_due_time_passes() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async with MovingDeadline(loop.time() + 0.05, shortest=0.05):
            await asyncio.sleep(30)


async def test_a_due_time_moved_later_outlives_the_first_one() -> None:
    loop = asyncio.get_running_loop()
    async with MovingDeadline(loop.time() + 0.5, shortest=0.5) as deadline:
        await asyncio.sleep(0.05)
        deadline.due = loop.time() + 10
        await asyncio.sleep(0.8)  # past the first due time: the timer re-armed instead of expiring


async def test_a_due_time_moved_back_expires_after_a_later_one() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async with MovingDeadline(loop.time() + 10, shortest=0.05) as deadline:
            await asyncio.sleep(0.01)
            deadline.due = loop.time() + 0.05  # as short as `shortest` allows
            await asyncio.sleep(30)


async def test_an_outside_cancellation_stays_a_cancellation() -> None:
    loop = asyncio.get_running_loop()

    async def guarded() -> None:
        async with MovingDeadline(loop.time() + 10, shortest=1):
            await asyncio.sleep(30)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
