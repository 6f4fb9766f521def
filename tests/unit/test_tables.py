from pathlib import Path

import pytest
from faust.exceptions import PartitionsMismatch

from app.pipeline import create_app
from app.settings import Settings
from tables.definitions import (
    ROCKSDB_OPTIONS,
    TABLE_NAMES,
    CheckedTable,
    create_tables,
)


def test_table_names_match_definitions(tmp_path: Path) -> None:
    settings = Settings.from_env({"SOCIALSTREAM_STATE_DIR": str(tmp_path)})
    app = create_app(settings)
    tables = create_tables(app, settings)
    names = {table.name for table in tables.all().values()}
    assert names == set(TABLE_NAMES)


def test_partition_check_waits_for_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env({"SOCIALSTREAM_STATE_DIR": str(tmp_path)})
    app = create_app(settings)
    table = create_tables(app, settings).message_likes
    assert isinstance(table, CheckedTable)
    changelog = table.changelog_topic_name
    known = {"source": 4, changelog: 0}
    monkeypatch.setattr(app.consumer, "topic_partitions", known.get)

    # Not in metadata yet: no error, and the check is not marked as done.
    table._verify_source_topic_partitions("source")
    assert "source" not in table._verified_source_topics_for_partitions

    known[changelog] = 2
    with pytest.raises(PartitionsMismatch):
        table._verify_source_topic_partitions("source")

    known[changelog] = 4
    table._verify_source_topic_partitions("source")
    assert "source" in table._verified_source_topics_for_partitions


def test_stores_open_with_bounded_memory(tmp_path: Path) -> None:
    settings = Settings.from_env({"SOCIALSTREAM_STATE_DIR": str(tmp_path)})
    app = create_app(settings)
    tables = create_tables(app, settings)
    for wrapper in tables.all().values():
        table = getattr(wrapper, "table", wrapper)
        options = table.data.rocksdb_options
        assert options.write_buffer_size == ROCKSDB_OPTIONS["write_buffer_size"]
        assert options.block_cache_size == ROCKSDB_OPTIONS["block_cache_size"]
        assert options.max_write_buffer_number == 2
