"""``settle``'s shortcut for an export whose every item was accepted gives what the general path gives, for
any result an exporter may return (hypothesis). The general path is taken by the same result as an instance of a
subclass of ``ExportResult`` (the shortcut is for ``ExportResult`` itself)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aiotlp.export import ExportResult
from aiotlp.processing._settle import Settlement, settle


class _General(ExportResult):
    """An ExportResult that takes settle's general path."""

    __slots__ = ()


def _settle(weight: int, *, result: ExportResult, **how: object) -> Settlement:
    general = _General(**{name: getattr(result, name) for name in result.__dataclass_fields__})
    return settle(weight, result=general, **how)  # type: ignore[arg-type]


@given(
    weight=st.integers(0, 600),
    accepted=st.integers(-5, 700),
    rejected=st.integers(-5, 700),
    failed=st.integers(-5, 700),
    dropped=st.integers(-5, 700),
    invalid=st.integers(-5, 700),
    cancelled=st.booleans(),
)
def test_the_shortcut_settles_as_the_general_path(
    weight: int, accepted: int, rejected: int, failed: int, dropped: int, invalid: int, cancelled: bool
) -> None:
    result = ExportResult(
        items=weight, accepted=accepted, rejected=rejected, failed=failed, dropped=dropped, invalid=invalid
    )
    assert settle(weight, result=result) == _settle(weight, result=result)
    assert settle(weight, cancelled=cancelled, result=result) == _settle(weight, cancelled=cancelled, result=result)
    error = RuntimeError("boom")
    assert settle(weight, exception=error, result=result) == _settle(weight, exception=error, result=result)


def test_all_accepted() -> None:
    assert settle(512, result=ExportResult(items=512, accepted=512)) == Settlement(512, accepted=512)
