"""Geometry arrays made with the cyclic garbage collector paused."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
import shapely

from layers.geometry import boxes, gc_paused, points


def test_pauses_nest_and_the_collector_resumes_after_the_last() -> None:
    assert gc.isenabled()
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_switched_off_before_stays_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_error_inside_still_resumes_the_collector() -> None:
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_overlapping_pauses_on_threads_resume_only_when_all_end() -> None:
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with gc_paused():
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    assert inside.wait(10)
    with gc_paused():
        pass
    assert not gc.isenabled()  # the other thread's pause has not ended
    release.set()
    worker.join(10)
    assert gc.isenabled()


def test_points_and_boxes_are_shapelys() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.random(50), rng.random(50)
    x[4] = np.nan
    made = points(x, y)
    assert made.dtype == object and len(made) == 50
    assert shapely.equals_exact(made, shapely.points(x, y)).sum() == 49  # NaN != NaN
    assert shapely.get_x(made[4]) != shapely.get_x(made[4])
    box = boxes(x, y, x + 1, y + 2)
    assert shapely.equals(box[:4], shapely.box(x[:4], y[:4], x[:4] + 1, y[:4] + 2)).all()


def test_a_child_forked_inside_a_pause_collects() -> None:
    import os

    with gc_paused():
        pid = os.fork()
        if pid == 0:  # the child: no thread of its will end the parent's pause
            os._exit(0 if gc.isenabled() else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert gc.isenabled()
