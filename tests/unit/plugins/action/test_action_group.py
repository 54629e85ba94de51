"""The action group mailflow.remediation.mailflow: every module is in it, and every module accepts what one
module_defaults entry for the group gives (the domain_* options), so that the entry fails no module."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from ansible_collections.mailflow.remediation.plugins.plugin_utils._action_base import DOMAIN_OPTIONS

REPO_ROOT = Path(__file__).resolve().parents[4]
MODULES = sorted(path.stem for path in (REPO_ROOT / "plugins" / "modules").glob("*.py"))


def test_every_module_is_in_the_action_group() -> None:
    runtime = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    assert runtime["action_groups"]["mailflow"] == MODULES


@pytest.mark.parametrize("module", MODULES)
def test_every_module_accepts_the_domain_options(module: str) -> None:
    action = importlib.import_module(f"ansible_collections.mailflow.remediation.plugins.action.{module}").ActionModule
    spec = action.ARGUMENTS["argument_spec"]
    assert {name: spec.get(name) for name in DOMAIN_OPTIONS} == DOMAIN_OPTIONS
