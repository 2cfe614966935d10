"""One customs site (TLS Mosquitto + customs CA) per system-test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.field_site import FieldSite


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FieldSite]:
    s = FieldSite(tmp_path_factory.mktemp("site"))
    yield s
    s.close()
