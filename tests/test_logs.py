"""Log lines: real logfmt or JSON, and journald conventions when stderr is the journal."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from quakealert.logs import Formatter, logfmt_value, priority, under_journald


def record(msg: str, *args: object, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("quakealert.service.poller", level, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def test_logfmt_quotes_values_that_need_it() -> None:
    """Spaces, quotes, '=' and newlines are quoted and escaped; plain tokens stay bare."""
    line = Formatter("logfmt").format(record('poll failed: "503" at x=1\nretry', source="cenc"))
    assert re.fullmatch(r'ts=\S+Z level=info logger=quakealert\.service\.poller '
                        r'msg="poll failed: \\"503\\" at x=1\\nretry" source=cenc', line), line
    assert shlex.split(line)[3] == 'msg=poll failed: "503" at x=1\\nretry'
    assert logfmt_value("") == '""'
    assert logfmt_value("cenc") == "cenc"


def test_json_lines_carry_extra_fields() -> None:
    """`[log] format = "json"`: one object per line with ts, level, logger, msg and extras."""
    line = Formatter("json").format(record("notice %s queued", "n-1", notice_id="n-1"))
    data = json.loads(line)
    assert data["msg"] == "notice n-1 queued" and data["notice_id"] == "n-1"
    assert data["level"] == "info" and data["ts"].endswith("Z")


def test_journald_lines_have_priority_and_no_timestamp() -> None:
    """Under journald: `<3>` for errors, `<4>` warnings, `<6>` info, and no ts= (journal adds it)."""
    fmt = Formatter("logfmt", journald=True)
    assert fmt.format(record("x", level=logging.ERROR)).startswith("<3>level=error ")
    assert fmt.format(record("x", level=logging.WARNING)).startswith("<4>")
    assert "ts=" not in fmt.format(record("x"))
    assert Formatter("json", journald=True).format(record("x")).startswith('<6>{"level"')
    assert priority(logging.DEBUG) == 7 and priority(logging.CRITICAL) == 2


def test_exceptions_stay_on_one_line() -> None:
    """A traceback is one escaped exc= value, so one event is one searchable line."""
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("q", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = Formatter("logfmt").format(rec)
    assert "\n" not in line and "exc=" in line and "ValueError: boom" in line


def test_journal_stream_must_name_our_stderr(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """$JOURNAL_STREAM counts only when it names the very stream we write to (sd-daemon)."""
    with (tmp_path / "err").open("w") as f:
        st = os.fstat(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert under_journald(f)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert not under_journald(f)
    monkeypatch.delenv("JOURNAL_STREAM")
    assert not under_journald(io.StringIO())


def test_daemon_logs_json_under_journald(tmp_path: Path) -> None:
    """A real process: `[log] format = "json"` and a journal-like stderr give <N>{json} lines."""
    err_path = tmp_path / "stderr"
    script = ("import logging, sys\nfrom quakealert.cli import setup_logging\n"
              "setup_logging(False, 'json')\nlogging.getLogger('quakealert.x').warning("
              "'source %s down', 'cenc', extra={'source': 'cenc'})\n")
    with err_path.open("w") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        subprocess.run([sys.executable, "-c", script], stderr=err, env=env, check=True,
                       timeout=60)
    line = err_path.read_text().strip()
    assert line.startswith("<4>{")
    assert json.loads(line[3:]) == {"level": "warning", "logger": "quakealert.x",
                                    "msg": "source cenc down", "source": "cenc"}
