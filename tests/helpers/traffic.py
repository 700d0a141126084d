"""Generated traffic shared by the end-to-end ingest tests and the chaos campaign."""

from __future__ import annotations

from openpool.traffic import Mess

# Every kind of mess the generator makes, at rates that show up in a couple of hours.
EVERY_KIND_OF_MESS = Mess(
    duplicate_events=0.05,
    reupload_files=0.1,
    late_files=0.1,
    truncated_files=1,
    invalid_events=0.02,
    split_ai_jobs=0.2,
    resets=2,
    orphan_ai_jobs=0.02,
)
