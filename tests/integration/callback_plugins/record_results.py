"""Test-side callback: writes every task result to the JSON file named by RECORD_RESULTS_FILE.

Private to the collection's integration tests; it lets a test assert on what ansible-playbook returned.
"""

from __future__ import annotations

import json
import os
import typing as t

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: record_results
type: aggregate
short_description: Write task results to a JSON file for the integration tests
description: Test helper of mailflow.remediation; not part of the collection's interface.
requirements:
  - RECORD_RESULTS_FILE set to a writable path
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.results: list[dict[str, t.Any]] = []

    def _record(self, status: str, result: t.Any) -> None:
        self.results.append(
            {
                "task": result.task_name or result._task.get_name(),
                "host": result._host.get_name(),
                "status": status,
                "result": self._convert(result._result),
            }
        )

    @staticmethod
    def _convert(value: t.Any) -> t.Any:
        return json.loads(json.dumps(value, default=str))

    def v2_runner_on_ok(self, result: t.Any) -> None:
        self._record("ok", result)

    def v2_runner_on_failed(self, result: t.Any, ignore_errors: bool = False) -> None:
        self._record("failed", result)

    def v2_runner_on_unreachable(self, result: t.Any) -> None:
        self._record("unreachable", result)

    def v2_runner_on_skipped(self, result: t.Any) -> None:
        self._record("skipped", result)

    def v2_playbook_on_stats(self, stats: t.Any) -> None:
        with open(os.environ["RECORD_RESULTS_FILE"], "w", encoding="utf-8") as stream:
            json.dump(self.results, stream, indent=2)
