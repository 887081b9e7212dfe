"""The collector, set for a server: what the process holds at start is frozen, young
collections are rare, and a config retired by a reload is still freed (each in a process of
its own: freezing is for the whole process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import ROOT


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_settling_freezes_what_is_held_and_widens_the_young_generation() -> None:
    out = _run(
        """
        import gc
        from gateway import collector
        held = [{"n": i} for i in range(1000)]
        collector.settle()
        print(gc.get_freeze_count() >= 1000, gc.get_threshold()[0])
        """
    )
    assert out == "True 10000"


def test_a_retired_cycle_is_freed_after_a_reload() -> None:
    out = _run(
        """
        import gc, weakref
        from gateway import collector

        class Config:
            pass

        old = Config()
        old.me = old  # a reference cycle, as a retired runtime has
        gone = weakref.ref(old)
        collector.settle()
        del old
        gc.collect()
        before = gone() is not None  # frozen: the collector cannot see it
        collector.refreeze()
        print(before, gone() is None, gc.get_freeze_count() > 0)
        """
    )
    assert out == "True True True"


def test_nothing_changes_in_a_process_that_never_settled() -> None:
    out = _run(
        """
        import gc
        from gateway import collector
        collector.refreeze()
        print(gc.get_freeze_count(), gc.get_threshold()[0])
        """
    )
    assert out == "0 700"
