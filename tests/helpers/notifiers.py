"""A real Airflow notifier that writes what it was sent to a JSON-lines file.

Configured as a user configures any notifier: an instance with Jinja templates that read
the alert (``{{ openpool_alert.subject }}``), passed to ``build_alerts_dag(notifiers=...)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow.sdk import BaseNotifier


class RecordingNotifier(BaseNotifier):
    template_fields = ("subject", "text", "key")

    def __init__(
        self,
        path: Path,
        subject: str = "{{ openpool_alert.subject }}",
        text: str = "{{ openpool_alert.text }}",
        key: str = "{{ openpool_alert.key }}",
    ) -> None:
        super().__init__()
        self.path = str(path)
        self.subject, self.text, self.key = subject, text, key

    def notify(self, context: Any) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"key": self.key, "subject": self.subject, "text": self.text}))
            f.write("\n")


def received(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]
