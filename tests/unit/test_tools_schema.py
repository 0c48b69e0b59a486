"""tools.yaml through its schema: every mistake is refused with file, line and key path.

The messages are what a technician reads after a typo, so the tests check the
whole prefix ``FILE:LINE: key.path:`` and that LINE really is the line of that
key in the file.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sequencer.faces.cli import report
from sequencer.line.config import ConfigError, load_tools
from sequencer.line.simhost import tools_config_for
from sequencer.line.tools_schema import ToolsFile, known_keys
from sequencer.store.journal import JournalError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "configs" / "tools.yaml"


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_tools(path)
    return str(info.value)


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line of ``path`` whose text contains ``needle``."""
    for n, text in enumerate(path.read_text().splitlines(), 1):
        if needle in text:
            return n
    raise AssertionError(f"{needle!r} not in {path}")


def shipped_doc() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED.read_text())


# ---------------------------------------------------------------- the shipped file
def test_the_shipped_file_loads_and_its_journal_is_beside_it(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    cfg = load_tools(SHIPPED)
    assert cfg.journal == REPO / "var" / "viaform.db"
    assert cfg.time_scale == 1.0 and cfg.handling == "sim"
    assert set(cfg.entries) == {"exposure", "oven", "etcher"}
    # entries stay what was written: no defaults added, nothing dropped
    assert cfg.entries["exposure"] == shipped_doc()["exposure"]
    assert cfg.sim_control == {"host": "127.0.0.1", "port": 5030}


def test_the_simulators_config_passes_the_schema() -> None:
    """What tools_config_for writes (tests write it to tools.yaml) is all known keys."""
    endpoints = {"exposure": {"tcp": ("127.0.0.1", 1)}, "etcher": {"tcp": ("127.0.0.1", 2),
                 "pty": "/dev/pts/9"}, "oven": {"tcp": ("127.0.0.1", 3), "rtu": "/dev/pts/8"},
                 "control": {"tcp": ("127.0.0.1", 4)}}
    cfg = tools_config_for(endpoints, 600.0)
    ToolsFile.model_validate({"time_scale": 600.0, **cfg.entries,
                              "sim_control": cfg.sim_control})


# ---------------------------------------------------------------- what was seen
TYPOS = [
    ("time_scal: 600\n", "time_scal", "did you mean time_scale?"),
    ("jornal: other.db\n", "jornal", "did you mean journal?"),
    ("exposre:\n  resource: x\n", "exposre", "did you mean exposure?"),
]


@pytest.mark.parametrize(("text", "key", "hint"), TYPOS)
def test_a_misspelt_top_level_key_is_refused_with_its_line(tmp_path, text, key, hint) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text("# a comment\ntime_scale: 2\n" + text)
    msg = refusal(path)
    assert msg == f"{path}:3: {key}: unknown key ({hint})"


def test_a_misspelt_tool_key_names_the_tool_and_the_line(tmp_path) -> None:
    doc = shipped_doc()
    doc["exposure"]["timout_s"] = doc["exposure"].pop("timeout_s")
    path = tmp_path / "tools.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    msg = refusal(path)
    assert msg == (f"{path}:{line_of(path, 'timout_s')}: exposure.timout_s: unknown key "
                   "(did you mean timeout_s?)")


@pytest.mark.parametrize(("key", "value", "words"), [
    ("port", "'70 20'", "valid integer"),
    ("port", "0", "greater than or equal to 1"),
    ("port", "70000", "less than or equal to 65535"),
    ("timeout_s", "-1", "greater than 0"),
    ("poll_s", "0", "greater than 0"),
    ("transport", "udp", "'tcp' or 'rtu'"),
    ("unit", "300", "less than or equal to 247"),
    ("host", "[a, b]", "valid string"),
])
def test_an_impossible_oven_value_is_refused(tmp_path, key, value, words) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text(f"time_scale: 1\noven:\n  {key}: {value}\n")
    msg = refusal(path)
    assert msg.startswith(f"{path}:{line_of(path, key + ':')}: oven.{key}: "), msg
    assert words in msg and "\n" not in msg


@pytest.mark.parametrize(("text", "where", "words"), [
    ("time_scale: 0\n", "time_scale", "greater than 0"),
    ("time_scale: -600\n", "time_scale", "greater than 0"),
    ("time_scale: .inf\n", "time_scale", "finite"),
    ("time_scale: fast\n", "time_scale", "valid number"),
    ("handling: robot\n", "handling", "'sim' or 'operator'"),
    ("handling_timeout_s: -5\n", "handling_timeout_s", "greater than 0"),
    ("sim_control: {host: 127.0.0.1, port: 99999}\n", "sim_control.port", "65535"),
    ("exposure: {resource: x, sim: {port: -1}}\n", "exposure.sim.port",
     "greater than or equal to 0"),
    ("daemon: {bind: 'everywhere'}\n", "daemon.bind", "pattern"),
    ("daemon: {url: 'localhost:8750'}\n", "daemon.url", "pattern"),
    ("daemon: {urll: 'http://x:1'}\n", "daemon.urll", "did you mean url?"),
    ("exposure: {timeout_s: 2}\n", "exposure.resource", "missing (required)"),
    ("etcher: {url: x, sim: {prt: 5026}}\n", "etcher.sim.prt", "did you mean port?"),
    ("oven: {transport: rtu}\n", "oven", "needs serial_port"),
    ("oven: 5020\n", "oven", "expected a mapping"),
])
def test_impossible_values_elsewhere(tmp_path, text, where, words) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text("journal: j.db\n" + text)
    msg = refusal(path)
    assert msg.startswith(f"{path}:2: {where}: "), msg
    assert words in msg


def test_several_problems_are_two_lines_the_first_in_file_order(tmp_path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text("oven: {port: 'x'}\ntime_scal: 5\nexposre: {}\n")
    first, second = refusal(path).splitlines()
    assert first.startswith(f"{path}:1: oven.port: ")
    assert second == f"  (and 2 more problems in {path})"


def test_a_duplicate_key_is_refused(tmp_path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text("time_scale: 600\njournal: a.db\ntime_scale: 1\n")
    assert refusal(path) == f"{path}:3: time_scale: duplicate key (first on line 1)"


@pytest.mark.parametrize(("text", "words"), [
    ("exposure: [unclosed\n", "not valid YAML"),
    ("", "empty"),
    ("- a list\n", "expected a mapping at the top"),
])
def test_unreadable_documents(tmp_path, text, words) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text(text)
    msg = refusal(path)
    assert msg.startswith(f"{path}") and words in msg


def test_a_missing_file() -> None:
    assert refusal(Path("/nonexistent/tools.yaml")) == "/nonexistent/tools.yaml: no such tools file"


# ---------------------------------------------------------------- the journal's path
def test_the_journal_is_relative_to_the_tools_file_not_the_cwd(monkeypatch, tmp_path) -> None:
    conf = tmp_path / "line" / "conf"
    conf.mkdir(parents=True)
    (conf / "tools.yaml").write_text("journal: ../var/j.db\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    seen = set()
    for cwd in (tmp_path, elsewhere, conf):
        monkeypatch.chdir(cwd)
        seen.add(load_tools(os.path.relpath(conf / "tools.yaml", cwd)).journal)
    assert seen == {tmp_path / "line" / "var" / "j.db"}


def test_an_absolute_journal_stays_and_the_default_is_beside_the_file(tmp_path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text("journal: /srv/viaform/j.db\n")
    assert load_tools(path).journal == Path("/srv/viaform/j.db")
    path.write_text("time_scale: 1\n")
    assert load_tools(path).journal == tmp_path / "var" / "viaform.db"


# ---------------------------------------------------------------- any unknown key, anywhere
def _mappings(doc: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path] if isinstance(doc, dict) else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _mappings(v, (*path, k))
    return out


MAPPINGS = _mappings(shipped_doc())
KEY = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(MAPPINGS), key=KEY, value=st.one_of(
    st.integers(), st.text(max_size=5), st.booleans(), st.none()))
def test_any_unknown_key_anywhere_is_refused_with_its_path_and_line(
        tmp_path_factory, where, key, value) -> None:
    if key in known_keys(where):
        return
    doc = copy.deepcopy(shipped_doc())
    section = doc
    for k in where:
        section = section[k]
    section[key] = value
    path = tmp_path_factory.mktemp("fuzz") / "tools.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
    msg = refusal(path)
    dotted = ".".join((*where, key))
    prefix = f"{path}:"
    assert msg.startswith(prefix) and "\n" not in msg, msg
    line, rest = msg[len(prefix):].split(": ", 1)
    assert rest.startswith(f"{dotted}: unknown key"), msg
    written = path.read_text().splitlines()[int(line) - 1].strip()
    assert written.startswith(f"{key}:") or written.startswith(f"'{key}':"), (written, msg)


# ---------------------------------------------------------------- the top level
def test_the_top_level_reports_user_errors_with_2_and_others_with_1(capsys, monkeypatch) -> None:
    monkeypatch.delenv("VIAFORM_DEBUG", raising=False)
    assert report(ConfigError("tools.yaml:3: x: unknown key")) == 2
    assert report(JournalError("journal j.db is damaged")) == 2
    assert report(RuntimeError("boom\nsecond line")) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["viaform: tools.yaml:3: x: unknown key", "viaform: journal j.db is damaged",
                   "viaform: boom second line (RuntimeError; VIAFORM_DEBUG=1 shows the traceback)"]
    monkeypatch.setenv("VIAFORM_DEBUG", "1")
    try:
        raise KeyError("k")
    except KeyError as exc:
        assert report(exc) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError: 'k'" in err
    assert err.rstrip().splitlines()[-1].startswith("viaform: 'k' (KeyError;")
