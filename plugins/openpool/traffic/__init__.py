"""Synthetic orchestrator event files, byte-for-byte in the orchestrators' wire format.

Tests, benchmarks, the demo and ``make up`` need traffic that looks exactly like what the
go-livepeer fork flushes to the bucket (``shared/spec/events.md``), plus the ways real
traffic goes wrong: re-sent events, re-uploaded and late files, truncated uploads, invalid
events, AI jobs split across flushes, orchestrator resets and AI jobs with no worker.
Everything is derived from one seed, so a failing test can be replayed exactly.

Not part of the ingest: the pipeline never imports this package. The reference the ingest
is checked against lives with the tests (``tests/helpers/oracle.py``).

- :mod:`.gojson` Go's ``json.MarshalIndent``, byte for byte
- :mod:`.keys` event times and object keys
- :mod:`.simulate` workers, jobs, tickets and resets over time
- :mod:`.mess` the ways uploads go wrong
- :mod:`.files` flushing into files, uploading, counting
- :mod:`.command` the ``openpool generate`` sub-command
"""

from __future__ import annotations

from openpool.traffic.files import GeneratedFile, count_events, generate, write
from openpool.traffic.gojson import marshal_indent
from openpool.traffic.keys import format_dt, object_key, parse_key
from openpool.traffic.mess import Mess
from openpool.traffic.simulate import worker_addresses

__all__ = [
    "GeneratedFile",
    "Mess",
    "count_events",
    "format_dt",
    "generate",
    "marshal_indent",
    "object_key",
    "parse_key",
    "worker_addresses",
    "write",
]
