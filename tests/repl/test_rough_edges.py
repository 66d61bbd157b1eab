"""REPL rough edges (issue 16): keys while the model loads, Ctrl-C during a load, /stats after a cancel."""

from __future__ import annotations

import _thread
import os
import pty
import termios
import threading
import time

from dgterm.engine.local import loading
from dgterm.repl.driver import no_echo


def test_keys_typed_while_away_from_the_prompt_reach_it_as_typed_ctrl_d_included():
    master, slave = pty.openpty()
    try:
        with os.fdopen(os.dup(slave), "rb", buffering=0) as tty:
            before = termios.tcgetattr(slave)
            with no_echo(tty):
                flags = termios.tcgetattr(slave)[3]
                assert not flags & termios.ECHO and not flags & termios.ICANON and flags & termios.ISIG
                os.write(master, b"ab\x04")  # typed while the model loads
                time.sleep(0.05)
            assert termios.tcgetattr(slave) == before
            raw = list(before)
            raw[3] &= ~(termios.ICANON | termios.ECHO)  # the prompt reads raw keys
            raw[6][termios.VMIN], raw[6][termios.VTIME] = 0, 2
            termios.tcsetattr(slave, termios.TCSANOW, raw)
            assert os.read(slave, 16) == b"ab\x04"  # canonical mode turned the Ctrl-D into nothing
    finally:
        os.close(master)
        os.close(slave)


def test_ctrl_c_while_loading_does_not_wait_for_the_load(run_repl, monkeypatch):
    started, release, where = threading.Event(), threading.Event(), []

    def slow_load(*args, **kwargs):
        where.append(threading.current_thread() is threading.main_thread())
        started.set()
        release.wait(120)  # a load deep in C code would not see the interrupt at all
        raise RuntimeError("dropped")

    monkeypatch.setattr(loading, "load", slow_load)

    def interrupt_once_loading(repl):
        threading.Thread(target=lambda: started.wait(120) and _thread.interrupt_main(), daemon=True).start()

    t = time.monotonic()
    try:
        r = run_repl([], setup=interrupt_once_loading)
    finally:
        release.set()
    assert where == [False]  # loaded off the main thread, so the wait for it is what Ctrl-C stops
    assert "Loading cancelled" in r.err and r.repl.lm is None and time.monotonic() - t < 60


def test_stats_after_a_cancel_count_the_canvas_it_stopped_in(run_repl, bundled):
    def interrupt_after_a_few_steps(repl):
        def watch():
            while repl.last is None or len(repl.last.events) < 3:
                if stop.wait(0.01):
                    return
            _thread.interrupt_main()

        threading.Thread(target=watch, daemon=True).start()

    stop = threading.Event()
    try:
        r = run_repl(["def fib(n):", "/stats"], "--mode", "plain", "--steps", "60", "--seed", "1", lm=bundled,
                     setup=interrupt_after_a_few_steps)
    finally:
        stop.set()
    last = r.repl.last
    assert last.result.run.cancelled
    ev = last.events[-1]
    assert f"{ev.step} (cancelled)" in r.out
    rows = {line.split("  ")[0].strip(): line.split()[-1] for line in r.out.splitlines() if line.strip()}
    assert rows["tokens"] == str(ev.tokens)
