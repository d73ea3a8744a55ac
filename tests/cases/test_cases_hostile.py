"""Hostile case numbers in paths and filters are 4xx, never a 500 (PostgreSQL refuses NUL)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("number", ["%00", "a%00b", "%ED%A0%80", "x" * 300, "..", "%20"])
def test_odd_case_numbers_in_paths_are_404(api, svc, alice, number):
    for user in (svc, alice):
        assert api(user).get(f"/api/v1/cases/{number}").status_code == 404
        assert api(user).post(f"/api/v1/cases/{number}/close", {}, format="json").status_code == 404


@pytest.mark.parametrize("value", ["\x00", "a\x00", "x" * 300])
def test_odd_case_filters_are_answered(api, svc, value):
    resp = api(svc).get("/api/v1/workitems", {"case": value})
    assert resp.status_code in (200, 400), resp.status_code
    if resp.status_code == 200:
        assert resp.json()["results"] == []
