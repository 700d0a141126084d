"""The payout plan's structure as pydantic models, checked before anything is signed.

A plan is trusted for its hash (a person approved exactly that content), never for its
shape: a plan written by hand or by a buggy planner with a repeated payment id would sign
two transactions of which the ledger keeps one, leaving a nonce that is never broadcast and
every later one queued behind it. So ``execute`` refuses, with :class:`InvalidPlan` naming
the problem, any plan that is not one positive integer-wei payment per payment id and per
(partition, worker) to a valid address.
"""

from __future__ import annotations

from typing import Annotated, Any

from eth_utils import is_address
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)

from openpool.errors import InvalidPlan
from openpool.partitions import Partition


def _address(v: str) -> str:
    if not is_address(v):
        raise ValueError(f"not a valid Ethereum address: {v!r}")
    return v


def _partition(v: str) -> str:
    Partition.parse(v)  # raises ValueError naming what is wrong
    return v


Address = Annotated[str, AfterValidator(_address)]
Wei = Annotated[StrictInt, Field(gt=0)]  # integer wei only: no floats, no bools, no zero


class Payment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    payment_id: Annotated[str, Field(min_length=1, max_length=64)]
    partition: Annotated[str, AfterValidator(_partition)]
    eth_address: Address
    amount_wei: Wei


class PlanLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold_wei: StrictInt
    max_payment_wei: StrictInt
    max_run_wei: StrictInt
    min_interval_s: StrictInt


class Plan(BaseModel):
    """One plan document (``plans/<sha256>.json``). Fields beyond these (deferred and held
    workers, notes) only inform the approver and are kept as they are."""

    model_config = ConfigDict(extra="allow", frozen=True)

    format: StrictInt
    created_at: str
    chain_id: Annotated[StrictInt, Field(gt=0)]
    wallet: Address
    basis: str
    limits: PlanLimits
    payments: list[Payment]
    total_wei: StrictInt

    @model_validator(mode="after")
    def _one_payment_each(self) -> Plan:
        ids = [p.payment_id for p in self.payments]
        dup_ids = sorted({i for i in ids if ids.count(i) > 1})
        if dup_ids:
            raise ValueError(f"duplicate payment_id {', '.join(dup_ids)}")
        keys = [(p.partition, p.eth_address.lower()) for p in self.payments]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            shown = ", ".join(f"{a} in {part}" for part, a in dup)
            raise ValueError(f"more than one payment per (partition, worker): {shown}")
        return self


def validate_plan(doc: dict[str, Any]) -> Plan:
    """The plan as a model, or :class:`InvalidPlan` naming every problem found."""
    try:
        return Plan.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'plan'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidPlan(f"invalid plan: {problems}; refused, nothing signed") from None
