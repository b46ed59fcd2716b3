"""The command's entry point: the CLI's modules load with the cycle collector paused.

Start-up is most of a small pull's time, and while some hundred modules load the
collector runs dozens of times over objects that live as long as the process. Pausing it
while they load, then freezing them out of its view, takes that work out of every run.
"""

from __future__ import annotations

import gc


def main() -> int:
    gc.disable()
    try:
        from imgpull.cli.main import main as run
    finally:
        gc.freeze()
        gc.enable()
    return run()
