"""Read one orchestrator event file (a JSON array) into Arrow tables, validating every event.

Design, because the reader sits on the hot path of every ingest run:

* Fast path: msgspec decodes the whole file straight into typed structs in one C call. The
  struct types carry the type rules (integers stay exact and never come from floats, no
  nulls, non-negative, int64 bounds, NodeType/Region equal to the partition's), so a clean
  file needs no Python-level check per field.
  Semantic rules (partition, RFC 3339 time, UUID shape, per-type required fields,
  addresses) are then checked column-wise with pyarrow.compute.
* Slow path, only when the typed decode fails: the file is split into raw element texts;
  each element is decoded typed on its own, and the ones that still fail are examined in
  Python to produce a specific reason (or accepted, e.g. unknown event types whose payload
  the typed structs cannot describe). The column-wise checks are shared by both paths, so
  a given element gets the same verdict whichever path it takes.
* ``payload_json`` is the canonical form ``json.dumps(obj, sort_keys=True,
  separators=(",", ":"))`` of the payload; ``content_sha256`` is the XXH3-128 digest (32
  hex digits, :func:`content_digest`) of the event's canonical form. (The column keeps its
  name from when it held SHA-256, whose per-event cost dominated the reader; dedup still
  recognises SHA-256 digests stored before the change, see :func:`legacy_content_sha256`.)
  On the fast path msgspec encodes the whole file's typed events once, which gives those
  exact bytes (struct fields are declared in sorted order, values are only ints and
  strings); the events and payloads are then located in that one buffer with vectorised
  byte comparisons, so no Python code runs per event. When a file contains non-ASCII text
  or DEL the events are re-serialised row by row with ``json.dumps`` so the bytes (and
  digests) are the same either way.

Choices: a UTF-8 byte-order mark is stripped and the file accepted (Go never writes one, but
re-uploads through other tools may add it; it carries no data). IDs must have UUID shape
(8-4-4-4-12 hex digits, any version, case kept as sent); anything else is rejected, since the
ID is the deduplication key. ``ethAddress`` is accepted when it is EIP-55 checksummed or
carries no checksum at all (all-lowercase or all-uppercase hex) and is stored checksummed; a
mixed-case address with a wrong checksum is rejected. Unknown top-level keys are tolerated
(they are part of ``content_sha256``), as are unknown payload keys (kept in
``payload_json``). A JSON syntax error, invalid UTF-8 or nesting deeper than the decoder's
limit anywhere in the file quarantines the whole file: it is not a JSON document.

Both paths sit behind :func:`verdicts`, which can be told to take either one (tests
compare them on every fuzz input); :func:`read_file` is its automatic choice.

Modules, in the order a file meets them: ``file`` (:func:`verdicts`, :func:`read_file` and
the fast path), ``structs`` (msgspec types and decoders), ``slow`` (whole-file problems and
the per-element path), ``depth`` (how deep the slow path's decoders may nest), ``build``
(column checks and the EVENTS table, for both paths), ``checks`` (vectorised shape and
address checks), ``eip55`` (address checksums: pycryptodome's Keccak-256), ``canonical``
(canonical bytes and digests), ``rules`` (which payload keys each event type owns) and
``result`` (:class:`FileResult`); ``lazy_pandas`` keeps pyarrow from importing pandas on
the ingest's behalf. Underscored names are internal to the package.
"""

from openpool.ingest.reader.canonical import content_digest, legacy_content_sha256
from openpool.ingest.reader.file import ReadPath, read_file, verdicts
from openpool.ingest.reader.lazy_pandas import skip_pandas_probe
from openpool.ingest.reader.result import RAW_JSON_LIMIT, FileResult

skip_pandas_probe()  # every ingest process imports the reader before building any array

__all__ = [
    "RAW_JSON_LIMIT",
    "FileResult",
    "ReadPath",
    "content_digest",
    "legacy_content_sha256",
    "read_file",
    "verdicts",
]
