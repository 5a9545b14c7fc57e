"""The rules router: task classifier → routing table (task → model)."""

from __future__ import annotations

from thrifty.routing.classifier import TaskClassifier
from thrifty.routing.signals import Signals


class RulesRouter:
    """`choose(signals, task_hint)` → (task, model). A task hint skips the classifier."""

    def __init__(self, table: dict[str, str], classifier: TaskClassifier | None = None) -> None:
        self.table = dict(table)
        self.classifier = classifier or TaskClassifier()

    @property
    def candidates(self) -> list[str]:
        return sorted(set(self.table.values()))

    def choose(self, signals: Signals, task_hint: str | None = None) -> tuple[str, str]:
        task = task_hint or self.classifier.classify(signals).task
        return task, self.table.get(task, self.table["default"])
