"""Traffic simulator: deterministic social-network traffic and its exact truth.

See ``docs/simulator.md`` for the model, the truth file and the commands.
"""

from simulator.config import ConfigError, SimulationConfig
from simulator.http_sender import HttpRun, send_http
from simulator.kafka_sender import ensure_topics, send_kafka
from simulator.records import Record
from simulator.simulation import Simulation, simulate
from simulator.truth import compute_truth
from simulator.verify import Difference, VerifyReport, check_truth, verify

__all__ = [
    "ConfigError",
    "Difference",
    "HttpRun",
    "Record",
    "Simulation",
    "SimulationConfig",
    "VerifyReport",
    "check_truth",
    "compute_truth",
    "ensure_topics",
    "send_http",
    "send_kafka",
    "simulate",
    "verify",
]
