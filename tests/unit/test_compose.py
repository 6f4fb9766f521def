from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_names_every_service() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("kafka", "mongo", "minio", "worker", "spark-master", "spark-worker"):
        assert name in services, name
    assert services["mongo"]["image"] == "mongo:7"
    assert (
        services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    )
    assert services["worker"]["build"] == "."


def test_compose_worker_env_uses_settings_names() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["services"]["worker"]["environment"]
    assert env["SOCIALSTREAM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["SOCIALSTREAM_MONGO_URL"] == "mongodb://mongo:27017/"
