"""Python's cycle collector, paused while a process starts.

A service imports some 800 modules when it starts, and the collector runs hundreds of
times meanwhile to find next to nothing: 13 % of the CPU of `import rampart.app`. The
`rampart` command (cli.py's main) pauses it first. `resume` then freezes what the start
made (gc.freeze: never scanned again; the long-lived modules, classes and settings) and
turns the collector back on. The API, worker and relay resume once set up (setup_process);
every other command resumes before it runs (cli.py's callback).
"""

from __future__ import annotations

import gc


def pause() -> None:
    gc.disable()


def resume() -> None:
    """Nothing to do when it runs already: a freeze then would also keep for good whatever
    cyclic garbage was waiting (tests build an app per test, each calling setup_process)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
