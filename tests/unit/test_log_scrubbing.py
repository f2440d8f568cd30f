from __future__ import annotations

import json
import logging

from rampart.kit.logging import configure_logging, get_logger


def test_log_lines_are_json_with_service_fields_and_no_secrets(capsys):
    configure_logging(service="api", env="test", version="9.9.9", level="INFO")
    get_logger("t").info(
        "something_happened",
        password="hunter2-hunter2",
        authorization="Bearer abc.def.ghi",
        note="contact alice@example.com please",
        nested={"api_key": "sk-live-123", "ok": 1},
    )
    logging.getLogger().handlers[0].flush()
    line = capsys.readouterr().out.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "something_happened"
    assert record["service"] == "api" and record["version"] == "9.9.9" and record["level"] == "info"
    assert "timestamp" in record
    for secret in ("hunter2-hunter2", "abc.def.ghi", "alice@example.com", "sk-live-123"):
        assert secret not in line
    assert record["nested"]["ok"] == 1
