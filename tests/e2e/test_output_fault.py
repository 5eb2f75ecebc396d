"""A 30 s cut between agent and scheduler in the middle of a 40 s run (issue 12): afterwards
the scheduler's stored copy equals what the command printed, byte for byte, and the run
became final once."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from easytask.rpc.v1 import api_pb2 as pb
from tests.e2e.harness import Cluster, task_json
from tests.e2e.proxy import CutProxy
from tests.e2e.test_flow import force_run

pytestmark = pytest.mark.e2e

LINES = 800  # one every 50 ms: 40 s


def test_a_30_s_cut_mid_run_loses_and_repeats_no_byte(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_scheduler()
    proxy = CutProxy(("127.0.0.1", cluster.port))
    try:
        cluster.start_agent("a1", "q1", "--server", proxy.address)
        cmd = f'for i in $(seq 1 {LINES}); do echo "line $i"; sleep 0.05; done'
        path = tmp_path / "t.json"
        path.write_text(json.dumps(task_json(1001, "numbered", "q1", cmd, tmp_path / "out")))
        cluster.ctl("tasks", "create", "-f", str(path))
        run_id = force_run(cluster, 1001)
        cluster.wait_state(run_id, {"RUNNING"})
        time.sleep(3)  # some output through first
        cutter = threading.Thread(target=proxy.cut, args=(30.0,))
        cutter.start()
        cutter.join()
        run = cluster.wait_final(run_id, timeout=120)
    finally:
        proxy.close()
    expected = "".join(f"line {i}\n" for i in range(1, LINES + 1))
    assert (tmp_path / "out" / "numbered.out").read_text() == expected  # what it printed
    logs = cluster.api().GetRunLogs(
        pb.RunLogsRequest(run_id=run_id, stream=pb.STDOUT_ONLY, per_page=5000),
        metadata=cluster.metadata(),
    )
    stored = "".join(line + "\n" for line in logs.stdout.lines)
    assert stored == expected and logs.stdout.total_bytes == len(expected)
    assert run.state == "SUCCESS"
    finals = [c.to_state for c in run.transitions if c.to_state in ("SUCCESS", "FAILED")]
    assert finals == ["SUCCESS"]  # final once
    assert [r.run_id for r in cluster.runs(1001)] == [run_id]
