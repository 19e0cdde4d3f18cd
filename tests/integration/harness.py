#!/usr/bin/env python3
"""Tiny test runner for the Pier integration tests (standard library only).

Usage: python3 tests/integration/harness.py [pattern]

Imports every tests/integration/test_*.py (sorted by file name), runs each
top-level function named test_* in the order it appears in its file, and
prints one line per test:

    ok - <module>.<function>
    not ok - <module>.<function>: <one-line reason>
    # <traceback lines>

The optional pattern keeps only tests whose "<module>.<function>" contains
it.  A test never skips: a missing precondition is a failure.  The run ends
with "# N passed, N failed" and exits 1 if any test failed (or if nothing
matched the pattern).

PIER_TEST_TIMEOUT (seconds, default 150) bounds each test; a test function
with a `timeout` attribute (seconds) gets that much if it is more.
"""

from __future__ import annotations

import glob
import importlib
import inspect
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


class TestTimeout(AssertionError):
    pass


def _on_alarm(signum, frame):
    raise TestTimeout(f"test exceeded {os.environ.get('PIER_TEST_TIMEOUT', '150')}s")


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if not first:
        # A bare assert: name the failing line instead.
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            fr = frames[-1]
            first = f"{(fr.line or '').strip()} ({os.path.basename(fr.filename)}:{fr.lineno})"
    reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if len(reason) > 400:
        reason = reason[:397] + "..."
    return reason


def print_traceback(exc: BaseException) -> None:
    for chunk in traceback.format_exception(type(exc), exc, exc.__traceback__):
        for line in chunk.rstrip("\n").split("\n"):
            print(f"# {line}")


def collect(pattern: str | None):
    """Yield (label, callable or None, import error or None) in run order."""
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        modname = os.path.splitext(os.path.basename(path))[0]
        try:
            module = importlib.import_module(modname)
        except BaseException as e:  # noqa: BLE001 - report any import failure as a failed test
            label = f"{modname}.<import>"
            if pattern is None or pattern in label or pattern in modname:
                yield label, None, e
            continue
        funcs = [
            obj for name, obj in vars(module).items()
            if name.startswith("test_") and inspect.isfunction(obj) and obj.__module__ == module.__name__
        ]
        funcs.sort(key=lambda f: f.__code__.co_firstlineno)
        for f in funcs:
            label = f"{modname}.{f.__name__}"
            if pattern is None or pattern in label:
                yield label, f, None


def main(argv: list[str]) -> int:
    pattern = argv[1] if len(argv) > 1 and argv[1] else None
    sys.path.insert(0, HERE)
    timeout = int(os.environ.get("PIER_TEST_TIMEOUT", "150"))
    signal.signal(signal.SIGALRM, _on_alarm)
    passed = failed = 0
    started = time.monotonic()
    for label, func, import_error in collect(pattern):
        if import_error is not None:
            failed += 1
            print(f"not ok - {label}: {one_line(import_error)}")
            print_traceback(import_error)
            sys.stdout.flush()
            continue
        t0 = time.monotonic()
        # A test that needs longer (building the Debian package) says so with
        # a timeout attribute on its function.
        signal.alarm(max(timeout, int(getattr(func, "timeout", 0))))
        try:
            func()
        except KeyboardInterrupt:
            signal.alarm(0)
            print(f"not ok - {label}: interrupted")
            failed += 1
            break
        except BaseException as e:  # noqa: BLE001 - every exception is a failure, SystemExit included
            signal.alarm(0)
            failed += 1
            print(f"not ok - {label}: {one_line(e)}")
            print_traceback(e)
        else:
            signal.alarm(0)
            passed += 1
            print(f"ok - {label}")
        if os.environ.get("PIER_TEST_VERBOSE"):
            print(f"#   {time.monotonic() - t0:.2f}s")
        sys.stdout.flush()
    print(f"# {passed} passed, {failed} failed")
    if passed + failed == 0:
        print(f"# no tests matched {pattern!r}" if pattern else "# no tests found")
        return 1
    if os.environ.get("PIER_TEST_VERBOSE"):
        print(f"# total {time.monotonic() - started:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
