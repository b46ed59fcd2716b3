"""A demo that needs no internet: Debian's ``docker-registry`` and ``busybox-static``.

    python -m imgpull.demo            # or scripts/demo, or (once wired) imgpull demo

    from imgpull.demo import run
    result = run(output=Path("demo-hello.tar"), engines=["podman"])
    result.ok, result.ran_with        # (True, ("podman",))

See :mod:`imgpull.demo.walkthrough` for the steps.
"""

from imgpull.demo.engines import ENGINES, EngineOutcome
from imgpull.demo.image import DEMO_OUTPUT, DemoError
from imgpull.demo.walkthrough import DemoResult, run

__all__ = ["DEMO_OUTPUT", "ENGINES", "DemoError", "DemoResult", "EngineOutcome", "run"]
