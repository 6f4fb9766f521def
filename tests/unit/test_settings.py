from pathlib import Path

import pytest

from app.settings import Settings, SettingsError, describe_variables


def test_defaults_point_at_local_stack(tmp_path: Path) -> None:
    settings = Settings.from_env({"SOCIALSTREAM_STATE_DIR": str(tmp_path)})
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.mongo_url == "mongodb://127.0.0.1:27017/"
    assert settings.api_url == "http://127.0.0.1:6066"
    assert settings.retention_days == 30
    assert settings.jwt_secret == ""


def test_stack_env_fills_missing_secrets(tmp_path: Path) -> None:
    (tmp_path / "stack.env").write_text(
        "# comment\nSOCIALSTREAM_JWT_SECRET=from-file\nSOCIALSTREAM_API_PORT=7000\n"
    )
    settings = Settings.from_env(
        {"SOCIALSTREAM_STATE_DIR": str(tmp_path), "SOCIALSTREAM_API_PORT": "6100"}
    )
    assert settings.jwt_secret == "from-file"
    assert settings.api_port == 6100


def test_invalid_number_names_variable(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match="SOCIALSTREAM_TOPIC_PARTITIONS must be an integer"
    ):
        Settings.from_env(
            {
                "SOCIALSTREAM_STATE_DIR": str(tmp_path),
                "SOCIALSTREAM_TOPIC_PARTITIONS": "x",
            }
        )


def test_zero_partitions_rejected(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="at least 1"):
        Settings.from_env(
            {
                "SOCIALSTREAM_STATE_DIR": str(tmp_path),
                "SOCIALSTREAM_TOPIC_PARTITIONS": "0",
            }
        )


def test_redacted_hides_secrets(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "SOCIALSTREAM_STATE_DIR": str(tmp_path),
            "SOCIALSTREAM_JWT_SECRET": "s3cret",
            "SOCIALSTREAM_S3_SECRET_KEY": "k3y",
        }
    )
    text = str(settings.redacted())
    assert "s3cret" not in text
    assert "k3y" not in text


def test_every_variable_is_in_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for variable, _default, _help in describe_variables():
        assert f"`{variable}`" in readme, variable


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SOCIALSTREAM_LOG_LEVEL", "LOUD", "must be one of DEBUG, INFO"),
        ("SOCIALSTREAM_ARCHIVE_FLUSH_ROWS", "0", "must be at least 1, got 0"),
        (
            "SOCIALSTREAM_ARCHIVE_FLUSH_SECONDS",
            "-1",
            "must be a positive number of seconds",
        ),
        (
            "SOCIALSTREAM_ARCHIVE_FLUSH_SECONDS",
            "nan",
            "must be a positive number of seconds",
        ),
        (
            "SOCIALSTREAM_ARCHIVE_FLUSH_SECONDS",
            "inf",
            "must be a positive number of seconds",
        ),
        ("SOCIALSTREAM_FEED_CACHE_MS", "-1", "must be between 0 and 60000, got -1"),
        (
            "SOCIALSTREAM_FEED_STALE_MS",
            "60001",
            "must be between 0 and 60000, got 60001",
        ),
    ],
)
def test_unusable_value_names_variable(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=f"{variable} {message}"):
        Settings.from_env({"SOCIALSTREAM_STATE_DIR": str(tmp_path), variable: value})


def test_lower_case_log_level_accepted(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"SOCIALSTREAM_STATE_DIR": str(tmp_path), "SOCIALSTREAM_LOG_LEVEL": "debug"}
    )

    assert settings.log_level == "debug"
