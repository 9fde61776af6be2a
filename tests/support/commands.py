"""Running a job's entry function in-process, and its ``--set`` arguments."""

from __future__ import annotations

import contextlib
import io


def call_main(main, argv: list[str], **kwargs) -> tuple[int, str, str]:
    """Run a job's entry function in this process (the test session's Spark is the active session):
    ``(exit code, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv, **kwargs)
    return code, out.getvalue(), err.getvalue()


def sets(*pairs: str) -> list[str]:
    """``--set`` arguments: ``sets("a=1", "b=2")`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [arg for pair in pairs for arg in ("--set", pair)]
