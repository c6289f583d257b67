"""Every log line carries the dossier and run it was written for."""
import io
import json
import threading

from shared.telemetry import configure_azure_monitor_if_enabled, configure_logging, get_logger, log_context


def test_json_lines_carry_the_bound_dossier_and_run():
    stream = io.StringIO()
    configure_logging(stream=stream)
    log = get_logger("test")
    with log_context(dossier="BIJOU", run_id="r1"):
        log.info("synced %s", "C001")
        with log_context(entity="account", key="C001"):
            log.warning("conflict")
    log.info("outside")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["dossier"] == "BIJOU" and lines[0]["run_id"] == "r1" and lines[0]["message"] == "synced C001"
    assert lines[1]["entity"] == "account" and lines[1]["dossier"] == "BIJOU"
    assert "dossier" not in lines[2]


def test_threads_keep_their_own_context():
    stream = io.StringIO()
    configure_logging(stream=stream)
    log = get_logger("test")

    def work(dossier):
        with log_context(dossier=dossier):
            for _ in range(50):
                log.info(dossier)

    threads = [threading.Thread(target=work, args=(d,)) for d in ("A", "B", "C")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 150 and all(line["dossier"] == line["message"] for line in lines)


def test_rotating_log_file(tmp_path):
    path = tmp_path / "logs" / "agent.log"
    configure_logging(filename=str(path), max_bytes=2000, backup_count=2)
    log = get_logger("agent")
    with log_context(dossier="BIJOU"):
        for i in range(200):
            log.info("line %d", i)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["agent.log", "agent.log.1", "agent.log.2"]
    assert json.loads(path.read_text().splitlines()[-1])["message"] == "line 199"


def test_application_insights_is_off_without_connection_string():
    assert configure_azure_monitor_if_enabled({}) is False


def test_application_insights_receives_the_connector_logs_when_configured():
    """In a separate process (the exporter is global): the connector's logger gets an OpenTelemetry
    handler that exports to the configured ingestion endpoint (a closed loopback port here)."""
    import subprocess
    import sys

    probe = (
        "import logging\n"
        "from shared.telemetry import configure_azure_monitor_if_enabled, LOGGER_NAME\n"
        "assert configure_azure_monitor_if_enabled() is True\n"
        "handlers = logging.getLogger(LOGGER_NAME).handlers\n"
        "print(sorted(type(h).__name__ for h in handlers))\n"
    )
    environ = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                                                 "IngestionEndpoint=http://127.0.0.1:9/;LiveEndpoint=http://127.0.0.1:9/",
        "OTEL_TRACES_SAMPLER": "always_off",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run([sys.executable, "-c", probe], env=environ, capture_output=True, text=True, timeout=120,
                         cwd=__import__("pathlib").Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LoggingHandler" in out.stdout
