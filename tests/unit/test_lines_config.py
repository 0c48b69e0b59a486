"""tools.yaml with several tools of a kind: ``kind:`` entries, read through their kind's
schema, with the same one-line refusals (file, line, key path) as the classic three."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sequencer.line.assemble import build_toolset
from sequencer.line.config import ConfigError, load_tools
from sequencer.runner.steps import SequencerConfig

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "configs" / "tools.yaml"

ETCHER_2 = """
etcher-2:
  kind: etcher
  url: "socket://127.0.0.1:5036"
  baudrate: 9600
  timeout_s: 2.0
  poll_s: 0.25
  sim: {host: 127.0.0.1, port: 5036, pty: false}
oven-2:
  kind: oven
  port: 5037
"""


def _with(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "tools.yaml"
    path.write_text(SHIPPED.read_text() + extra)
    return path


def test_further_tools_have_their_kind_and_the_classic_three_keep_theirs(tmp_path) -> None:
    cfg = load_tools(_with(tmp_path, ETCHER_2))
    assert cfg.kinds == {"exposure": "exposure", "oven": "oven", "etcher": "etcher",
                         "etcher-2": "etcher", "oven-2": "oven"}
    assert cfg.of_kind("etcher") == ["etcher", "etcher-2"]
    assert cfg.entry("etcher-2")["url"] == "socket://127.0.0.1:5036"
    poll = SequencerConfig.from_tools(cfg).poll_s
    assert poll["etcher-2"] == 0.25 and poll["oven-2"] == 5.0  # the kind's default
    tools = build_toolset(cfg)
    assert tools.kinds == cfg.kinds
    assert type(tools.drivers["etcher-2"]) is type(tools.drivers["etcher"])
    assert type(tools.drivers["oven-2"]) is type(tools.drivers["oven"])


def test_the_shipped_file_is_the_classic_line() -> None:
    assert load_tools(SHIPPED).kinds == {"exposure": "exposure", "oven": "oven",
                                         "etcher": "etcher"}


def _line(path: Path, needle: str) -> int:
    return next(n for n, t in enumerate(path.read_text().splitlines(), 1) if needle in t)


def test_a_misspelt_key_of_a_further_tool_names_its_line(tmp_path) -> None:
    path = _with(tmp_path, ETCHER_2.replace("  poll_s: 0.25", "  pol_s: 0.25"))
    with pytest.raises(ConfigError) as info:
        load_tools(path)
    assert str(info.value) == (f"{path}:{_line(path, 'pol_s')}: etcher-2.pol_s: unknown key "
                               f"(did you mean poll_s?)")


def test_an_unknown_kind_is_refused_with_its_line(tmp_path) -> None:
    path = _with(tmp_path, "stepper:\n  kind: stepper\n  url: x\n")
    with pytest.raises(ConfigError) as info:
        load_tools(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:{_line(path, 'kind: stepper')}: stepper.kind: ")
    assert "'exposure', 'oven' or 'etcher'" in msg


def test_a_further_tool_without_kind_is_an_unknown_key(tmp_path) -> None:
    path = _with(tmp_path, "litho-2:\n  resource: x\n")
    with pytest.raises(ConfigError) as info:
        load_tools(path)
    assert str(info.value).startswith(f"{path}:{_line(path, 'litho-2')}: litho-2: unknown key")
    assert "needs kind: exposure | oven | etcher" in str(info.value)


def test_a_kind_that_contradicts_a_classic_name_is_refused(tmp_path) -> None:
    doc = yaml.safe_load(SHIPPED.read_text())
    doc["etcher"]["kind"] = "oven"
    path = tmp_path / "tools.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as info:
        load_tools(path)
    assert "etcher.kind:" in str(info.value)


def test_a_line_without_an_etcher_is_refused_before_any_driver(tmp_path) -> None:
    doc = yaml.safe_load(SHIPPED.read_text())
    del doc["etcher"]
    path = tmp_path / "tools.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as info:
        build_toolset(load_tools(path))
    assert "no etcher tool" in str(info.value)
