"""Identifiers are UUIDv7: version and variant bits right, and ordered by creation time."""

from __future__ import annotations

import uuid

from pushgate.domain.ids import new_id


def test_id_is_a_version_7_rfc_variant_uuid() -> None:
    value = new_id()

    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_id_carries_its_millisecond_timestamp() -> None:
    value = new_id(now_ms=1_700_000_000_123)

    assert value.int >> 80 == 1_700_000_000_123


def test_ids_made_later_sort_after_earlier_ones() -> None:
    # Given ids made one millisecond apart
    made = [new_id(now_ms=1_700_000_000_000 + ms) for ms in range(200)]

    # Then sorting by id (what keyset pagination does) restores creation order
    assert sorted(made) == made
    assert sorted(str(v) for v in made) == [str(v) for v in made]


def test_ids_made_in_the_same_millisecond_still_differ() -> None:
    values = {new_id(now_ms=1_700_000_000_000) for _ in range(1000)}

    assert len(values) == 1000
    assert all(v.version == 7 and v.variant == uuid.RFC_4122 for v in values)
