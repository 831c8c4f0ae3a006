"""bench/load.py, small: concurrent clients on the device server and the cloud API, and every answered request
has exactly one record (the bench exits 1 on a lost or doubled record or any 5xx)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp")


def test_small_load_loses_nothing(bench_script, capsys) -> None:
    load = bench_script("load")
    code = load.main(
        [
            "--clients",
            "8",
            "--device-requests",
            "16",
            "--route-requests",
            "40",
            "--chat-requests",
            "8",
            "--ingest-records",
            "40",
            "--json",
        ]
    )
    phases = json.loads(capsys.readouterr().out)
    assert code == 0, phases
    assert [p["requests"] for p in phases] == [16, 40, 8, 8]
    for phase in phases:
        assert phase["records_lost"] == phase["records_doubled"] == 0
        assert phase["records_found"] == phase["records_expected"]
    assert phases[0]["records_expected"] == 16 and phases[2]["records_expected"] == 8
    assert phases[3]["records_expected"] == 40
