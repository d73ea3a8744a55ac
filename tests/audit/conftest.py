"""Fixtures of the audit tests."""

from __future__ import annotations

import pytest

from workitems import services


@pytest.fixture
def trail(make_item, alice):
    """Two items: the first with 3 audit records (create, claim, start), the second with 2."""
    first = make_item()
    services.work_item_claim(item_id=first.pk, actor=alice)
    services.work_item_start(item_id=first.pk, actor=alice)
    second = make_item()
    services.work_item_claim(item_id=second.pk, actor=alice)
    return first, second
