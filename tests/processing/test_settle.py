"""The settlement of one export call, table-tested: every way an export ends -> counts, reason, error line.

``aiotlp.processing._settle`` is pure; these tables pin what the batch processor's ledger, self-metrics and log
lines get from each result an exporter may return (including wrong ones), and that the counts always add up.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiotlp import DeadlineExceededError, QueueFullError, QueueWriteError, RejectedError
from aiotlp.export import ExportResult
from aiotlp.processing._settle import MAX_ERROR_LENGTH, describe, drop_reason, error_type, reconcile, settle

W = 10  # the weight of the batch in every row


@pytest.mark.parametrize(
    ("kwargs", "counts", "kind", "error", "outcomes"),
    [
        pytest.param({"result": ExportResult(items=W, accepted=W)}, (W, 0, 0, 0, 0), None, None, {}, id="all accepted"),
        pytest.param(
            {"cancelled": True, "cancel_reason": "the export took longer than export_timeout (1s)"},
            (0, 0, W, 0, 0),
            "timeout",
            "TimeoutError: the export took longer than export_timeout (1s)",
            {"timeout": W},
            id="cancelled by the processor: a timeout",
        ),
        pytest.param(
            {"cancelled": True},
            (0, 0, W, 0, 0),
            "cancelled",
            "CancelledError: cancelled",
            {"cancelled": W},
            id="cancelled from outside",
        ),
        pytest.param(
            {"exception": RuntimeError("boom")},
            (0, 0, W, 0, 0),
            "RuntimeError",
            "RuntimeError: boom",
            {"RuntimeError": W},
            id="the exporter raised",
        ),
        pytest.param(
            {"result": "not a result"},
            (0, 0, W, 0, 0),
            "_OTHER",
            "TypeError: the exporter returned str, not an ExportResult",
            {"_OTHER": W},
            id="the exporter returned something else",
        ),
        pytest.param(
            {"result": ExportResult(items=W, accepted=7, rejected=3, error_message="bad span")},
            (7, 3, 0, 0, 0),
            "rejected",
            "partial success, 3 rejected: bad span",
            {"rejected": 3},
            id="partial success",
        ),
        pytest.param(
            {"result": ExportResult(items=W, accepted=8, rejected=2)},
            (8, 2, 0, 0, 0),
            "rejected",
            "partial success, 2 rejected: (no message)",
            {"rejected": 2},
            id="partial success without a message",
        ),
        pytest.param(
            {"result": ExportResult(items=W, failed=W, error=DeadlineExceededError("late"))},
            (0, 0, W, 0, 0),
            "timeout",
            "DeadlineExceededError: late",
            {"timeout": W},
            id="failed on a deadline",
        ),
        pytest.param(
            {"result": ExportResult(items=W, failed=W, error=RejectedError("gave up"))},
            (0, 0, W, 0, 0),
            "RejectedError",
            "RejectedError: gave up",
            {"RejectedError": W},
            id="failed for good",
        ),
        pytest.param(
            {"result": ExportResult(items=W, accepted=6, dropped=4)},
            (6, 0, 0, 4, 0),
            "too_large",
            "4 items dropped by the exporter (too_large)",
            {"too_large": 4},
            id="dropped as too large",
        ),
        pytest.param(
            {"result": ExportResult(items=W, accepted=6, dropped=4, invalid=1)},
            (6, 0, 0, 3, 1),
            "too_large",
            "3 items dropped by the exporter (too_large), 1 items dropped by the exporter (invalid: cannot be encoded)",
            {"too_large": 3, "invalid": 1},
            id="dropped, one of them invalid",
        ),
        pytest.param(
            {"result": ExportResult(items=W, accepted=8, dropped=2, invalid=2)},
            (8, 0, 0, 0, 2),
            "invalid",
            "2 items dropped by the exporter (invalid: cannot be encoded)",
            {"invalid": 2},
            id="dropped as invalid",
        ),
        pytest.param(
            {"result": ExportResult(items=W, dropped=W, error=QueueFullError("full"))},
            (0, 0, 0, W, 0),
            "disk_full",
            "QueueFullError: full",
            {"disk_full": W},
            id="the disk queue was full",
        ),
        pytest.param(
            {"result": ExportResult(items=W, dropped=W, error=QueueWriteError("eio"))},
            (0, 0, 0, W, 0),
            "disk_error",
            "QueueWriteError: eio",
            {"disk_error": W},
            id="the disk queue could not write",
        ),
        pytest.param(
            {"result": ExportResult(items=4, accepted=4)},
            (4, 0, 6, 0, 0),
            "_OTHER",
            "6 items failed",
            {"_OTHER": 6},
            id="the exporter accounts for fewer: the rest failed",
        ),
        pytest.param(
            {"result": ExportResult(items=30, accepted=12, rejected=9, failed=9)},
            (W, 0, 0, 0, 0),
            None,
            None,
            {},
            id="the exporter accounts for more: clamped, accepted first",
        ),
        pytest.param(
            {"result": ExportResult(items=W, accepted=-5, failed=W)},
            (0, 0, W, 0, 0),
            "_OTHER",
            "10 items failed",
            {"_OTHER": W},
            id="negative counts count as zero",
        ),
    ],
)
def test_every_way_an_export_ends_settles_every_item_once(
    kwargs: dict[str, object],
    counts: tuple[int, int, int, int, int],
    kind: str | None,
    error: str | None,
    outcomes: dict[str, int],
) -> None:
    settled = settle(W, **kwargs)  # type: ignore[arg-type]
    got = (settled.accepted, settled.rejected, settled.failed, settled.too_large, settled.invalid)
    assert got == counts
    assert sum(got) == W
    assert settled.error_type == kind
    assert settled.error == error
    assert settled.outcomes == outcomes


@given(
    weight=st.integers(0, 1000),
    accepted=st.integers(-5, 1200),
    rejected=st.integers(-5, 1200),
    failed=st.integers(-5, 1200),
    dropped=st.integers(-5, 1200),
    invalid=st.integers(-5, 1200),
)
def test_whatever_the_exporter_says_the_counts_add_up_to_the_batch(
    weight: int, accepted: int, rejected: int, failed: int, dropped: int, invalid: int
) -> None:
    result = ExportResult(
        items=weight, accepted=accepted, rejected=rejected, failed=failed, dropped=dropped, invalid=invalid
    )
    settled = settle(weight, result=result)
    parts = (settled.accepted, settled.rejected, settled.failed, settled.too_large, settled.invalid)
    assert all(part >= 0 for part in parts)
    assert sum(parts) == weight
    assert sum(settled.outcomes.values()) == weight - settled.accepted
    assert (settled.error is None) == (settled.accepted == weight)


def test_reconcile_fills_accepted_then_rejected_then_dropped_then_failed() -> None:
    assert reconcile(ExportResult(accepted=3, rejected=3, dropped=3, failed=3), 7) == (3, 3, 0, 1)
    assert reconcile(ExportResult(accepted=2), 5) == (2, 0, 3, 0)


def test_error_type_and_drop_reason_name_what_happened() -> None:
    assert error_type(None) == "_OTHER"
    assert error_type(asyncio.TimeoutError()) == "timeout"
    assert error_type(DeadlineExceededError("x")) == "timeout"
    assert error_type(ValueError("x")) == "ValueError"
    assert drop_reason(None) == "too_large"
    assert drop_reason(QueueFullError("x")) == "disk_full"
    assert drop_reason(QueueWriteError("x")) == "disk_error"


def test_long_errors_are_cut() -> None:
    assert describe(ValueError("x" * 1000)) == ("ValueError: " + "x" * 1000)[: MAX_ERROR_LENGTH - 3] + "..."
    assert len(settle(W, result=ExportResult(items=W, rejected=W, error_message="m" * 1000)).error or "") == (
        MAX_ERROR_LENGTH
    )
