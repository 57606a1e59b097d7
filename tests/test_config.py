from pathlib import Path

import pytest

from codespark.config import load_settings
from codespark.errors import ConfigError


def test_precedence_flags_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "codespark.toml"
    cfg.write_text('port = 9000\nhost = "0.0.0.0"\nn_ctx = 2048\n')
    monkeypatch.setenv("CODESPARK_PORT", "9100")
    settings = load_settings(cfg, host="127.0.0.2")
    assert settings.host == "127.0.0.2"  # flag beats file
    assert settings.port == 9100  # env beats file
    assert settings.n_ctx == 2048  # file beats default


def test_config_from_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("n_batch = 64\n")
    monkeypatch.setenv("CODESPARK_CONFIG", str(cfg))
    assert load_settings().n_batch == 64


def test_missing_config_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="port"):
        load_settings(port=70000)


def test_unknown_setting_in_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="colour"):
        load_settings(cfg)
