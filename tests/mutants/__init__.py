"""The mutation smoke (``make mutants``): remove one core mechanism, watch its test fail.

Each :class:`Mutant` is one mechanism a Guarantees row rests on, disabled by exact text
edits of the library (each ``old`` must occur exactly once, so an edit never silently
stops applying: ``tests/test_mutants.py`` checks that in ``make test``), and the tests the
README names for that row. ``python -m tests.mutants`` runs those tests on the intact code
(they must pass), then on each mutant in a copy of ``plugins/`` (they must fail).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    path: str  # under plugins/openpool/
    old: str
    new: str


@dataclass(frozen=True)
class Mutant:
    name: str
    row: str  # the Guarantees row whose proof it tests
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]  # pytest node ids; every one must fail


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "no ID dedup against history",
        "Each event ID counts once",
        (
            Edit(
                "ingest/dedup.py",
                'seen = pc.is_in(first.column("event_id"), value_set=known.column("event_id"))',
                'seen = pc.is_in(first.column("event_id"), value_set=known.column("event_id")[:0])',
            ),
        ),
        ("tests/test_ingest_state.py::test_dedup_in_batch_and_against_history_with_conflicts",),
    ),
    Mutant(
        "no ID dedup within a batch",
        "Each event ID counts once",
        (
            Edit(
                "ingest/dedup.py",
                'if _all_distinct(batch.column("event_id")):',
                "if True:",
            ),
        ),
        (
            "tests/test_ingest_state.py::test_dedup_in_batch_and_against_history_with_conflicts",
            "tests/test_ingest.py::test_messy_traffic_equals_the_oracle_and_a_rerun_changes_nothing",
        ),
    ),
    Mutant(
        "no full-history duplicate check in the plan",
        "An ID that returns dated in another hour",
        (
            Edit(
                "payouts/plan.py",
                "held = find_duplicates(state, partitions, pinned=snaps).blocked()",
                "held: dict = {}",
            ),
        ),
        (
            "tests/test_ingest_edges.py::test_a_payout_plan_never_pays_an_id_twice_whatever_its_hour",
        ),
    ),
    Mutant(
        "no full-history duplicate check at execute",
        "An ID that returns dated in another hour",
        (
            Edit(
                "payouts/execute.py",
                "held = find_duplicates(ledger.snaps.store, parts, pinned=snaps).blocked()",
                "held: dict = {}",
            ),
        ),
        (
            "tests/test_payouts_repeats.py::"
            "test_a_repeat_ingested_after_the_plan_holds_the_payment_back_at_execute",
        ),
    ),
    Mutant(
        "no clock bound on event times",
        "An event outside its file's key window, or more than the skew past the clock",
        (
            Edit(
                "ingest/clock.py",
                "last <= min(window[1], clock + skew)",
                "last <= window[1]",
            ),
            Edit(
                "ingest/clock.py",
                "ahead = pc.greater(times, limit)",
                "ahead = pc.greater(times, pa.scalar(clock + timedelta(days=99999), TS))",
            ),
            Edit(
                "ingest/clock.py",
                "    if clock is not None and newest > clock:\n        newest = clock\n",
                "",
            ),
        ),
        (
            "tests/test_ingest_edges.py::"
            "test_a_far_future_event_is_rejected_and_cannot_move_the_partition_clock",
        ),
    ),
    Mutant(
        "commit by overwrite, not exclusive create",
        "Concurrent writers lose nothing",
        (
            Edit(
                "snapshots/store.py",
                "self.store.put_if_absent(self._key(rel), manifest.to_bytes())",
                "self.store.put(self._key(rel), manifest.to_bytes())",
            ),
        ),
        (
            "tests/test_snapshots_concurrency.py::"
            "test_concurrent_writers_threads_and_processes_lose_nothing",
        ),
    ),
    Mutant(
        "no content hash check on read",
        "Damaged or missing state stops the run",
        (
            Edit(
                "snapshots/parquet.py",
                "if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:",
                "if False:",
            ),
        ),
        ("tests/test_snapshots.py::test_same_size_damage_is_caught_by_the_hash",),
    ),
    Mutant(
        "broadcast before the signed records are committed",
        "Nobody is paid twice",
        (
            Edit(
                "payouts/execute.py",
                "            raw, tx_hash = wallet.sign(tx)\n",
                "            raw, tx_hash = wallet.sign(tx)\n            chain.send_raw(raw)\n",
            ),
        ),
        (
            "tests/test_payouts.py::"
            "test_a_killed_execute_then_recover_and_rerun_pays_exactly_once[before_signed_commit]",
        ),
    ),
    Mutant(
        "no check that the ledger covers the chain",
        "Nobody is paid twice",
        (
            Edit(
                "payouts/reconcile.py",
                "    missing, used, snap = unknown_nonces(ledger, chain)\n    if missing:",
                "    missing, used, snap = unknown_nonces(ledger, chain)\n    if False:",
            ),
        ),
        (
            "tests/test_payouts_chain.py::"
            "test_a_lost_or_rolled_back_ledger_refuses_everything_until_reconciled",
            "tests/test_payouts_chain.py::"
            "test_an_s3_state_store_lost_after_payments_is_refused_never_paid_again",
        ),
    ),
    Mutant(
        "no typed-hash check on an approval",
        "Nothing is paid without a person approving exactly that plan",
        (
            Edit(
                "airflow/approval.py",
                "return len(plan_hash) >= CONFIRM_CHARS and typed == "
                "plan_hash[:CONFIRM_CHARS].lower()",
                "return True",
            ),
        ),
        (
            "tests/test_payouts_dag.py::test_execute_refuses_an_approval_result_without_the_typed_hash",
        ),
    ),
)
