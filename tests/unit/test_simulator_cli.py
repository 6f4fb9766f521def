"""Command line: the truth command's file, and verify's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli import main, read_truth


def test_truth_command_writes_file(tmp_path: Path) -> None:
    path = tmp_path / "sim" / "truth.json"
    code = main(
        [
            "truth",
            "--seed",
            "3",
            "--users",
            "4",
            "--days",
            "2",
            "--messages-per-day",
            "5",
            "--truth",
            str(path),
        ]
    )
    assert code == 0
    truth = json.loads(path.read_text(encoding="utf-8"))
    assert truth["format"] == "socialstream-simulator-truth"
    assert len(truth["days"]) == 2
    assert truth["users"] == ["user-0001", "user-0002", "user-0003", "user-0004"]
    assert len(truth["message_ids"]) == 10
    assert truth["config"]["seed"] == 3
    assert set(truth["figures"]) == {
        "messages_daily",
        "likes_daily",
        "views_daily",
        "sentiment_daily",
        "user_messages",
        "user_likes",
        "user_views",
        "message_likes",
        "message_views",
    }
    assert read_truth(path) == truth


def test_truth_command_same_seed_same_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for path in (first, second):
        assert (
            main(
                [
                    "truth",
                    "--seed",
                    "4",
                    "--users",
                    "3",
                    "--days",
                    "1",
                    "--messages-per-day",
                    "4",
                    "--truth",
                    str(path),
                ]
            )
            == 0
        )
    assert first.read_bytes() == second.read_bytes()


def test_truth_command_rejects_old_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["truth", "--start", "2000-01-01", "--truth", str(tmp_path / "t.json")])
    assert code == 2
    assert "retention" in capsys.readouterr().err


def test_verify_missing_truth_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--truth", str(tmp_path / "none.json")]) == 2
    assert "not found" in capsys.readouterr().err


def test_verify_rejects_other_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"days": []}', encoding="utf-8")
    assert main(["verify", "--truth", str(path)]) == 2
    assert "not a simulator truth file" in capsys.readouterr().err


def test_verify_unreachable_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "truth.json"
    assert (
        main(
            [
                "truth",
                "--users",
                "2",
                "--days",
                "1",
                "--messages-per-day",
                "2",
                "--truth",
                str(path),
            ]
        )
        == 0
    )
    assert (
        main(["verify", "--truth", str(path), "--api-url", "http://127.0.0.1:9"]) == 1
    )
    assert "could not reach the API" in capsys.readouterr().err
