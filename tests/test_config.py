"""Settings come from the environment; a bad value is a clear error, not a traceback."""

from __future__ import annotations

import pytest

from pplx_demo.config import Settings
from pplx_demo.errors import DemoError


def test_settings_read_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PPLX_DEMO_DB", str(tmp_path / "x.duckdb"))
    monkeypatch.setenv("PPLX_DEMO_MAX_FILE_BYTES", "1234")
    monkeypatch.setenv("PPLX_DEMO_ALLOW_PRIVATE", "yes")
    monkeypatch.setenv("PPLX_DEMO_DEVICE", "CPU")
    s = Settings.from_env()
    assert (s.db_path, s.max_file_bytes, s.allow_private_addresses, s.device) == (tmp_path / "x.duckdb", 1234,
                                                                                  True, "cpu")


@pytest.mark.parametrize("name,value,needle", [("PPLX_DEMO_MAX_FILE_BYTES", "50MB", "not a valid int"),
                                               ("PPLX_DEMO_HUB_TIMEOUT_S", "soon", "not a valid float"),
                                               ("PPLX_DEMO_DEVICE", "tpu", "must be one of")])
def test_a_bad_setting_names_itself(monkeypatch, name, value, needle):
    monkeypatch.setenv(name, value)
    with pytest.raises(DemoError, match=f"{name}.*{needle}"):
        Settings.from_env()
