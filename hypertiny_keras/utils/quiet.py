"""Silencing what TensorFlow, the TFLite converter and Keras print while they work.

A conversion prints about 40 lines: `Saved artifact at ...`, one
`TensorSpec(... resource)` line per variable, absl `W`/`I` lines from C++,
"Statistics for quantized inputs were expected ...", "fully_quantize: 0,
...". `silenced()` sends all of it to a temporary file: file descriptors 1
and 2 (C++ logs), `sys.stdout` / `sys.stderr` (Python prints), Python
warnings and the absl / TensorFlow loggers. On an error the relevant last
line of that text (an `error` line or an absl `E`/`F` line) is added to the
error's message, and the error is re-raised.

Set `HYPERTINY_VERBOSE=1` (what `hypertiny -v` does) to let everything through.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

#: Environment variable that turns silencing off when set to anything but "", "0", "false" or "no".
VERBOSE_ENV = "HYPERTINY_VERBOSE"
#: Python loggers held at ERROR while silenced.
LOGGERS = ("absl", "tensorflow", "keras", "h5py")
#: Longest captured line added to an error message, in characters.
MAX_DETAIL_CHARS = 300

#: absl's C++ log prefix, e.g. "E0000 00:00:1796210605.843974    4305 convert.cc:153] ".
_ABSL_PREFIX = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+\s+\S+:\d+\]\s*")
_ERROR_WORD = re.compile(r"(^|\W)(error|failed|fatal)\b", re.IGNORECASE)
_depth = 0


def verbose() -> bool:
    """Whether `HYPERTINY_VERBOSE` asks for everything to be shown."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def relevant_line(text: str) -> str:
    """The last line of `text` that reports an error, without its absl prefix ("" if there is none)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        prefix = _ABSL_PREFIX.match(line)
        message = line[prefix.end() :] if prefix else line
        if message and ((prefix and prefix.group(1) in "EF") or _ERROR_WORD.search(message)):
            return message if len(message) <= MAX_DETAIL_CHARS else message[: MAX_DETAIL_CHARS - 3] + "..."
    return ""


def _amend(error: BaseException, detail: str) -> None:
    """Add `detail` to the message of `error` (in place, keeping its type), unless it says it already."""
    message = str(error)
    if not detail or detail in message:
        return
    if len(error.args) <= 1 and all(isinstance(arg, str) for arg in error.args):
        error.args = (f"{message} ({detail})" if message else detail,)
    elif hasattr(error, "add_note"):
        error.add_note(detail)


@contextlib.contextmanager
def _redirected(log) -> Iterator[None]:
    """File descriptors 1 and 2, `sys.stdout` and `sys.stderr` into the binary file `log`."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    text = open(log.fileno(), "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            yield
    finally:
        with contextlib.suppress(Exception):
            text.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.level, logging.ERROR))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Run the `with` body with everything it prints sent to a temporary file (see the module).

    Does nothing when `verbose()` is true, or inside another `silenced()`.
    An exception of the body propagates with the captured text's relevant
    last line added to its message.
    """
    global _depth
    if verbose() or _depth:
        yield
        return
    _depth += 1
    log = tempfile.TemporaryFile(prefix="hypertiny-quiet-")
    try:
        with _redirected(log), _quiet_loggers(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except Exception as error:
        log.seek(0)
        _amend(error, relevant_line(log.read().decode("utf-8", errors="replace")))
        raise
    finally:
        _depth -= 1
        log.close()
