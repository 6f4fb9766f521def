from pathlib import Path

from app.pipeline import create_app
from app.settings import Settings
from tables.definitions import TABLE_NAMES, create_tables


def test_table_names_match_definitions(tmp_path: Path) -> None:
    settings = Settings.from_env({"SOCIALSTREAM_STATE_DIR": str(tmp_path)})
    app = create_app(settings)
    tables = create_tables(app, settings)
    names = {table.name for table in tables.all().values()}
    assert names == set(TABLE_NAMES)
