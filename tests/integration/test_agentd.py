"""easytask-agentd as a real process against a scripted AgentService on a real gRPC port."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import resource
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from easytask.agentd.journal import Journal
from easytask.rpc.v1 import agent_pb2 as pb
from tests.integration.agentd_support import AgentProcess, FakeScheduler, is_msg, start_server

TOKEN = "test-agent-token-0123456789"


@dataclass
class Env:
    fs: FakeScheduler
    port: int
    agent: AgentProcess
    tmp: Path


@pytest.fixture
async def sched() -> AsyncIterator[tuple[FakeScheduler, int]]:
    fs = FakeScheduler(TOKEN)
    server, port = await start_server(fs)
    fs.server = server
    try:
        yield fs, port
    finally:
        await server.stop(None)


@pytest.fixture
async def env(tmp_path: Path, sched: tuple[FakeScheduler, int]) -> AsyncIterator[Env]:
    fs, port = sched
    agent = AgentProcess(tmp_path / "home", port, TOKEN).start(env={"HOME": str(tmp_path)})
    try:
        await fs.connected()
        yield Env(fs, port, agent, tmp_path)
    finally:
        code = await agent.stop()
    assert code == 0, agent.log_text()
    assert TOKEN not in agent.log_text()


async def group_gone(pgid: int, timeout: float = 15.0) -> bool:
    async with asyncio.timeout(timeout):
        while True:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
            await asyncio.sleep(0.05)


def run_messages(fs: FakeScheduler, run_id: str) -> list[str]:
    """Kinds of the messages about ``run_id``, in arrival order."""
    out = []
    for m in fs.history:
        kind = m.WhichOneof("msg")
        if getattr(getattr(m, kind), "run_id", None) == run_id:
            out.append(kind)
    return out


e2e = pytest.mark.e2e


@e2e
async def test_success_reports_output_ranges_and_log_steps(env: Env) -> None:
    out = env.tmp / "o.txt"
    out.write_bytes(b"old line\n")  # append mode: the run's range starts after it
    await env.fs.run("r-ok", "echo hi; echo err >&2", env.tmp, stdout=str(out), queue="q1")
    fin = await env.fs.finished("r-ok")

    assert (fin.state, fin.reason, fin.has_return_code, fin.return_code) == (
        "SUCCESS", "", True, 0,
    )  # fmt: skip
    assert out.read_bytes() == b"old line\nhi\n"
    assert (fin.stdout_path, fin.stdout_start, fin.stdout_end) == (str(out), 9, 12)
    err = env.tmp / "r-ok.err"
    assert (fin.stderr_path, fin.stderr_start, fin.stderr_end) == (str(err), 0, 4)
    assert err.read_bytes() == b"err\n"
    assert env.fs.output("r-ok", pb.STDOUT) == b"hi\n"
    assert env.fs.output("r-ok", pb.STDERR) == b"err\n"
    kinds = run_messages(env.fs, "r-ok")
    assert kinds[:2] == ["accepted", "started"] and kinds[-1] == "finished"
    assert set(kinds[2:-1]) == {"output"}
    started = env.fs.matching(lambda m: is_msg(m, "started", "r-ok"))[0].started
    assert started.pid == fin.pid and started.stdout_path == str(out)
    assert fin.ended_at_ms >= fin.started_at_ms > 0

    log = env.agent.log_text()
    for step in (
        "Task Received",
        "Command Prepared",
        "Execution Start",
        "Execution End",
        "Return Code",
    ):
        assert f" INFO agent run=r-ok tid=1001 task=t1 {step}: " in log
    assert "Task Received: queue=q1 attempt=1" in log


@e2e
async def test_nonzero_exit_is_failed_with_its_code(env: Env) -> None:
    await env.fs.run("r-3", "exit 3", env.tmp)
    fin = await env.fs.finished("r-3")
    assert (fin.state, fin.reason, fin.return_code) == ("FAILED", "exit code 3", 3)


@e2e
async def test_max_run_time_terminates_the_process_group(env: Env) -> None:
    await env.fs.run("r-slow", "sleep 30 & sleep 30", env.tmp, max_run_time=1)
    fin = await env.fs.finished("r-slow", timeout=20)
    assert (fin.state, fin.reason) == ("TERMINATED", "timed out")
    assert 900 <= fin.ended_at_ms - fin.started_at_ms < 5000
    assert await group_gone(fin.pid)


@e2e
async def test_kill_run_terminates_with_the_given_reason_and_output_is_live(env: Env) -> None:
    await env.fs.run("r-kill", "echo first; sleep 30", env.tmp)
    chunk = await env.fs.wait_for(lambda m: is_msg(m, "output", "r-kill"))
    assert (chunk.output.offset, chunk.output.data) == (0, b"first\n")  # streamed while running
    await env.fs.kill("r-kill", "terminated by admin")
    fin = await env.fs.finished("r-kill")
    assert (fin.state, fin.reason) == ("TERMINATED", "terminated by admin")
    assert fin.has_return_code and fin.return_code in (-15, 143)
    assert await group_gone(fin.pid)


@e2e
async def test_same_run_task_twice_starts_one_process(env: Env) -> None:
    counter = env.tmp / "counter"
    cmd = f"echo x >> {counter}; sleep 0.3"
    await env.fs.run("r-dup", cmd, env.tmp)
    await env.fs.run("r-dup", cmd, env.tmp)
    await env.fs.finished("r-dup")
    await env.fs.run("r-dup", cmd, env.tmp)  # after the result: re-sent, not re-run
    await env.fs.wait_until(
        lambda: len(env.fs.matching(lambda m: is_msg(m, "finished", "r-dup"))) == 2
    )
    assert counter.read_text() == "x\n"
    assert (
        len({m.started.pid for m in env.fs.matching(lambda m: is_msg(m, "started", "r-dup"))}) == 1
    )


@e2e
async def test_unacked_result_is_resent_after_reconnect_and_forgotten_after_ack(env: Env) -> None:
    fs = env.fs
    await fs.run("r-spool", "echo spooled", env.tmp)
    first = await fs.finished("r-spool")
    fs.drop()
    await fs.connected(streams=2)
    known = {k.run_id: k for k in fs.hellos[1].known_runs}
    assert known["r-spool"].state == "SUCCESS" and known["r-spool"].stdout_size == 8
    mark = len(fs.history) - 1  # the second Hello
    again = await fs.wait_for(lambda m: is_msg(m, "finished", "r-spool"), start=mark)
    assert again.finished == first

    await fs.ack("r-spool")
    fs.drop()
    await fs.connected(streams=3)
    assert [k.run_id for k in fs.hellos[2].known_runs] == []


@e2e
async def test_resend_output_rereads_the_file(env: Env) -> None:
    await env.fs.run("r-re", "printf 'abcdef'", env.tmp)
    await env.fs.finished("r-re")
    mark = len(env.fs.history)
    resend = pb.ResendOutput(run_id="r-re", stream=pb.STDOUT, offset=2)
    await env.fs.send(pb.SchedulerMessage(resend_output=resend))
    chunk = await env.fs.wait_for(lambda m: is_msg(m, "output", "r-re"), start=mark)
    assert (chunk.output.offset, chunk.output.data) == (2, b"cdef")


@e2e
async def test_placeholders_profile_and_run_environment(env: Env) -> None:
    profiles = env.agent.home / "profiles"
    profiles.mkdir()
    (profiles / "prod.env").write_text(
        "# comment\n\nexport GREETING='hello world'\nTARGET=\"db1\"\n"
    )
    cmd = (
        "echo ${E:YYYYMMDD} ${E:HHMM} ${E:GREETING} ${T:task_name} ${T:task_id};"
        " echo $TARGET $EASYTASK_RUN_ID $EASYTASK_TID $EASYTASK_TASK_NAME"
        " $EASYTASK_RUN_DATE $EASYTASK_ATTEMPT; pwd"
    )
    await env.fs.run(
        "r-ph", cmd, env.tmp, stdout="logs/${E:YYYYMMDD}-${T:task_name}.out", profile="prod",
        run_date="20260601", local_time="08:30", tid=1234, name="nightly", attempt=2,
    )  # fmt: skip
    fin = await env.fs.finished("r-ph")
    assert fin.state == "SUCCESS", fin
    out = env.tmp / "logs" / "20260601-nightly.out"  # relative: against the run user's home
    assert fin.stdout_path == str(out)
    assert out.read_text().splitlines() == [
        "20260601 0830 hello world nightly 1234",
        "db1 r-ph 1234 nightly 20260601 2",
        str(env.tmp),
    ]
    assert "Command Prepared: profile=" + str(profiles / "prod.env") in env.agent.log_text()


@e2e
async def test_preparation_failures_start_no_process(env: Env) -> None:
    await env.fs.run("r-nop", "touch should-not-exist", env.tmp, profile="nope")
    await env.fs.run("r-unk", "echo ${E:NO_SUCH_VAR_XYZ}", env.tmp)
    await env.fs.run("r-usr", "true", env.tmp, run_as_user="no-such-user-xyz")
    results = {r: await env.fs.finished(r) for r in ("r-nop", "r-unk", "r-usr")}
    assert {r: (f.state, f.reason) for r, f in results.items()} == {
        "r-nop": ("FAILED", "profile not found: nope"),
        "r-unk": ("FAILED", "unknown placeholder ${E:NO_SUCH_VAR_XYZ}"),
        "r-usr": ("FAILED", "cannot run as user no-such-user-xyz"),
    }
    assert all(not f.has_return_code and f.started_at_ms == 0 for f in results.values())
    assert not env.fs.matching(lambda m: m.WhichOneof("msg") == "started")
    assert not (env.tmp / "should-not-exist").exists()


@e2e
async def test_agent_killed_mid_run_recovers_after_restart(
    tmp_path: Path, sched: tuple[FakeScheduler, int]
) -> None:
    fs, port = sched
    home = tmp_path / "home"
    agent = AgentProcess(home, port, TOKEN).start()
    await fs.connected()
    await fs.run("r-done", "echo before", tmp_path)
    await fs.finished("r-done")  # finished, never acked
    await fs.run("r-long", "echo one; sleep 2; echo two; exit 4", tmp_path)
    started = (await fs.wait_for(lambda m: is_msg(m, "started", "r-long"))).started
    assert await agent.stop(signal.SIGKILL) == -signal.SIGKILL
    os.kill(started.pid, 0)  # the command survived its agent

    agent2 = AgentProcess(home, port, TOKEN).start()
    try:
        await fs.connected(streams=2)
        known = {k.run_id: k.state for k in fs.hellos[1].known_runs}
        assert known == {"r-done": "SUCCESS", "r-long": "RUNNING"}
        mark = len(fs.history) - 1
        await fs.wait_for(lambda m: is_msg(m, "finished", "r-done"), start=mark)
        fin = await fs.finished("r-long", timeout=10)
        assert (fin.state, fin.reason, fin.return_code, fin.pid) == (
            "FAILED",
            "exit code 4",
            4,
            started.pid,
        )
        assert fs.output("r-long", pb.STDOUT) == b"one\ntwo\n"  # complete across the restart
        assert (fin.stdout_start, fin.stdout_end) == (0, 8)
        await fs.ack("r-long")
        await fs.ack("r-done")
        fs.drop()
        await fs.connected(streams=3)
        assert list(fs.hellos[2].known_runs) == []
        assert len(fs.matching(lambda m: is_msg(m, "finished", "r-long"))) == 1
        assert "r-long recovered: pid" in agent2.log_text()
    finally:
        assert await agent2.stop() == 0


@e2e
async def test_sigterm_leaves_commands_running_for_the_next_agent(
    tmp_path: Path, sched: tuple[FakeScheduler, int]
) -> None:
    fs, port = sched
    home = tmp_path / "home"
    agent = AgentProcess(home, port, TOKEN).start()
    try:
        await fs.connected()
        await fs.run("r-term", "sleep 1; echo late; exit 5", tmp_path)
        started = (await fs.wait_for(lambda m: is_msg(m, "started", "r-term"))).started
    finally:
        assert await agent.stop(signal.SIGTERM) == 0
    os.kill(started.pid, 0)  # still running
    assert not fs.matching(lambda m: is_msg(m, "finished", "r-term"))
    agent2 = AgentProcess(home, port, TOKEN).start()
    try:
        fin = await fs.finished("r-term")
        assert (fin.state, fin.reason, fin.return_code) == ("FAILED", "exit code 5", 5)
        assert (tmp_path / "r-term.out").read_bytes()[
            fin.stdout_start : fin.stdout_end
        ] == b"late\n"
    finally:
        assert await agent2.stop() == 0


@e2e
async def test_reconnects_to_a_restarted_scheduler_and_reports_what_ran_meanwhile(
    tmp_path: Path, sched: tuple[FakeScheduler, int]
) -> None:
    fs, port = sched
    agent = AgentProcess(tmp_path / "home", port, TOKEN).start()
    try:
        await fs.connected()
        await fs.run("r-away", "sleep 0.5; echo done", tmp_path)
        await fs.wait_for(lambda m: is_msg(m, "started", "r-away"))
        assert fs.server is not None
        await fs.server.stop(None)  # the scheduler goes away while the command runs
        fs2 = FakeScheduler(TOKEN)
        server2, _ = await start_server(fs2, port)
        try:
            await fs2.connected(timeout=15)
            fin = await fs2.finished("r-away")
            assert (fin.state, fin.stdout_end - fin.stdout_start) == ("SUCCESS", 5)
            assert [k.run_id for k in fs2.hellos[0].known_runs] == ["r-away"]
        finally:
            await server2.stop(None)
    finally:
        assert await agent.stop() == 0


@e2e
async def test_max_parallel_queues_runs_in_order_and_kill_reaches_a_queued_run(
    tmp_path: Path, sched: tuple[FakeScheduler, int]
) -> None:
    fs, port = sched
    agent = AgentProcess(tmp_path / "home", port, TOKEN, args=["--max-parallel", "1"]).start()
    try:
        await fs.connected()
        await fs.run("q-1", "sleep 30", tmp_path)
        await fs.run("q-2", "true", tmp_path)
        await fs.run("q-3", "true", tmp_path)
        await fs.wait_for(lambda m: is_msg(m, "accepted", "q-3"))
        await fs.kill("q-2", "terminated by admin")
        fin2 = await fs.finished("q-2")
        assert (fin2.state, fin2.reason, fin2.pid) == ("TERMINATED", "terminated by admin", 0)
        assert not fs.matching(lambda m: is_msg(m, "started", "q-3"))  # still waiting for q-1
        await fs.kill("q-1", "terminated by admin")
        assert (await fs.finished("q-3")).state == "SUCCESS"
        assert not fs.matching(lambda m: is_msg(m, "started", "q-2"))
    finally:
        assert await agent.stop() == 0


@e2e
async def test_wrong_token_is_refused_and_the_agent_exits_3(
    tmp_path: Path, sched: tuple[FakeScheduler, int]
) -> None:
    fs, port = sched
    agent = AgentProcess(tmp_path / "home", port, "wrong-token-zzz").start()
    assert await agent.wait(timeout=15) == 3
    # Usually one attempt; grpc may report a write racing the abort as INTERNAL, then retry.
    assert fs.refusals and set(fs.refusals) == {"Bearer wrong-token-zzz"}
    log = agent.log_text()
    assert "refused the agent token (UNAUTHENTICATED" in log
    assert "wrong-token-zzz" not in log


@e2e
async def test_token_from_credentials_file_and_missing_token(
    tmp_path: Path, sched: tuple[FakeScheduler, int]
) -> None:
    fs, port = sched
    home = tmp_path / "home"
    home.mkdir()
    agent = AgentProcess(home, port, TOKEN)
    agent.argv.remove("--token")
    agent.argv.remove(TOKEN)
    clean = {k: v for k, v in os.environ.items() if k != "EASYTASK_TOKEN"}
    missing = await asyncio.to_thread(_run_quietly, agent.argv, clean)
    assert missing.returncode == 3 and b"no agent token" in missing.stderr
    (home / "credentials.json").write_text(json.dumps({"agent_token": TOKEN}))
    agent.start()
    try:
        await fs.connected()
    finally:
        assert await agent.stop() == 0


def _run_quietly(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, env=env, capture_output=True, timeout=20, check=False)


@e2e
async def test_journal_write_failure_declines_the_run(
    tmp_path: Path, sched: tuple[FakeScheduler, int]
) -> None:
    fs, port = sched
    agent = AgentProcess(tmp_path / "home", port, TOKEN)
    agent.start(preexec_fn=_limit_file_size(64 * 1024))
    try:
        await fs.connected()
        big = "x" * 70_000  # the accepted record alone exceeds RLIMIT_FSIZE: EFBIG
        await fs.run("r-big", f": {big}", tmp_path)
        declined = (await fs.wait_for(lambda m: is_msg(m, "declined", "r-big"))).declined
        assert "cannot journal the run" in declined.reason
        await fs.run("r-small", "true", tmp_path)
        assert (await fs.finished("r-small")).state == "SUCCESS"
        assert not fs.matching(lambda m: is_msg(m, "accepted", "r-big"))
    finally:
        assert await agent.stop() == 0


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


async def test_journal_replay_ignores_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    task = {"run_id": "r1", "tid": 1001, "name": "t", "cmd": "true", "stdout": "o", "stderr": "e"}
    lines = [
        {"t": "accepted", "run_id": "r1", "at": 1, "task": task},
        {"t": "accepted", "run_id": "r2", "at": 2, "task": {**task, "run_id": "r2"}},
        {
            "t": "finished",
            "run_id": "r2",
            "result": {"state": "SUCCESS", "reason": "", "return_code": 0},
        },
        {"t": "acked", "run_id": "r2"},
    ]
    path.write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in lines) + b'{"t": "fini')
    journal = Journal(path)
    entries = journal.load()
    assert [e.run_id for e in entries] == ["r1"]
    assert path.read_bytes().count(b"\n") == 1  # compacted: only r1's accepted record is left
    writer = asyncio.create_task(journal.run())
    await journal.append({"t": "finished", "run_id": "r1", "result": {"state": "FAILED"}})
    await journal.close()
    await writer
    assert Journal(path).load()[0].finished == {
        "t": "finished",
        "run_id": "r1",
        "result": {"state": "FAILED"},
    }


async def test_journal_write_error_is_raised_and_leaves_no_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.load()
    writer = asyncio.create_task(journal.run())
    await journal.append({"t": "acked", "run_id": "x"})
    real_fdatasync = os.fdatasync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    os.fdatasync = full  # type: ignore[assignment]
    try:
        with pytest.raises(OSError) as info:
            await journal.append({"t": "acked", "run_id": "y"})
        assert info.value.errno == errno.ENOSPC
    finally:
        os.fdatasync = real_fdatasync
    await journal.append({"t": "acked", "run_id": "z"})
    await journal.close()
    await writer
    assert path.read_bytes().splitlines() == [
        b'{"t":"acked","run_id":"x"}',
        b'{"t":"acked","run_id":"z"}',
    ]


@e2e
@pytest.mark.skipif(
    not os.environ.get("EASYTASK_AGENTD_BENCH"), reason="set EASYTASK_AGENTD_BENCH=1"
)
async def test_throughput_bash_true(tmp_path: Path, sched: tuple[FakeScheduler, int]) -> None:
    n = int(os.environ.get("EASYTASK_AGENTD_BENCH_N", "2000"))
    raw = await _raw_rate(n)
    fs, port = sched
    agent = AgentProcess(tmp_path / "home", port, TOKEN).start()
    try:
        await fs.connected()
        tasks = [
            pb.SchedulerMessage(run=pb.RunTask(run_id=f"b{i}", tid=1001, name="b", cmd="true",
                                               stdout="/dev/null", stderr="/dev/null"))
            for i in range(n)
        ]  # fmt: skip
        t0 = time.perf_counter()
        for msg in tasks:
            await fs.send(msg)
        seen = [0]
        done: set[str] = set()

        def all_done() -> bool:
            new, seen[0] = fs.history[seen[0] :], len(fs.history)
            done.update(m.finished.run_id for m in new if m.WhichOneof("msg") == "finished")
            return len(done) >= n

        await fs.wait_until(all_done, timeout=300)
        rate = n / (time.perf_counter() - t0)
    finally:
        await agent.stop()
    ratio = rate / raw
    print(f"\nagent {rate:.0f} runs/s; raw (asyncio x16) {raw:.0f}/s; ratio {ratio:.2f}")
    assert ratio >= 0.4


async def _raw_rate(n: int) -> float:
    sem = asyncio.Semaphore(16)

    async def one() -> None:
        async with sem:
            proc = await asyncio.create_subprocess_exec(
                "bash", "-c", "true", stdin=subprocess.DEVNULL
            )
            await proc.wait()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


@e2e
async def test_commands_never_see_the_agent_token(
    tmp_path: Path, sched: tuple[FakeScheduler, int]
) -> None:
    fs, port = sched
    # The token comes from the environment here (no --token): it must not reach commands.
    agent = AgentProcess(tmp_path / "home", port, "").start(
        env={"HOME": str(tmp_path), "EASYTASK_TOKEN": TOKEN}
    )
    try:
        await fs.connected()
        out = tmp_path / "env.out"
        await fs.run("r-env", "echo token=${EASYTASK_TOKEN:-absent}", tmp_path, stdout=str(out))
        fin = await fs.finished("r-env")
        assert fin.state == "SUCCESS"
        assert out.read_text() == "token=absent\n"
    finally:
        assert await agent.stop() == 0
