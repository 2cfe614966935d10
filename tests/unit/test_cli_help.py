"""Every command and option of both CLIs says what it does in --help; `cmd` lists the commands it can send."""

from __future__ import annotations

import argparse

from agent.customs.cli import build_parser as officer_parser
from agent.device.cli import build_parser as agent_parser


def _undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, sub in action.choices.items():
                if not helps.get(name):
                    missing.append(f"{path} {name} (command)")
                missing += _undocumented(sub, f"{path} {name}")
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)) and not action.help:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_has_a_help_text() -> None:
    assert _undocumented(agent_parser(), "evidence-agent") == []
    assert _undocumented(officer_parser(), "evidence-officer") == []


def test_cmd_help_lists_its_commands() -> None:
    sub = next(a for a in officer_parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = sub.choices["cmd"].format_help()
    for name in ("snapshot", "mark", "status", "selftest"):
        assert f"{name}:" in text, text
