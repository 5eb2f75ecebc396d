"""Mutual TLS for agents (issue 12): the scheduler's --agent-listen port takes agents whose
certificate its --tls-ca signed, and names them by it. Certificates are made here."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from easytask.rpc.v1 import api_pb2 as pb
from easytask.rpc.v1 import api_pb2_grpc
from tests.e2e.harness import BIN, Proc, task_json, wait_until

pytestmark = pytest.mark.e2e

NOW = datetime.datetime.now(datetime.UTC)


class Pki:
    """A CA in a directory, issuing PEM key and certificate files."""

    def __init__(self, out: Path, name: str) -> None:
        self.out, self.name = out, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = self._sign(name, self.key.public_key(), ca=True)
        self.ca_file = out / f"{name}-ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _sign(
        self, cn: str, public: ec.EllipticCurvePublicKey, *, ca: bool, server: bool = False
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)]))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if server:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue(self, cn: str, *, server: bool = False) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._sign(cn, key.public_key(), ca=False, server=server)
        cert_file, key_file = self.out / f"{self.name}-{cn}.crt", self.out / f"{self.name}-{cn}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        encoding, fmt = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
        key_file.write_bytes(key.private_bytes(encoding, fmt, serialization.NoEncryption()))
        return cert_file, key_file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_agents_with_a_certificate_of_the_ca_connect_under_its_name(tmp_path: Path) -> None:
    ca, foreign = Pki(tmp_path, "ca"), Pki(tmp_path, "foreign")
    server_cert, server_key = ca.issue("localhost", server=True)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EASYTASK_")}
    agent_port = free_port()
    scheduler = Proc(
        [str(BIN / "easytask-scheduler"), "--home", str(home), "--grpc-listen", "127.0.0.1:0",
         "--http-listen", "", "--tls-cert", str(server_cert), "--tls-key", str(server_key),
         "--tls-ca", str(ca.ca_file), "--agent-listen", f"127.0.0.1:{agent_port}"],
        tmp_path / "scheduler.out", env,
    ).start()  # fmt: skip
    procs = [scheduler]
    try:
        addr = home / "scheduler.addr"
        wait_until("the scheduler", lambda: addr.exists() and addr.read_text().strip())
        api_port = int(addr.read_text().strip().rsplit(":", 1)[1])
        creds = grpc.ssl_channel_credentials(ca.ca_file.read_bytes())
        channel = grpc.secure_channel(f"localhost:{api_port}", creds)
        api = api_pb2_grpc.EasyTaskApiStub(channel)
        token = json.loads((home / "credentials.json").read_text())["api_token"]
        md = (("authorization", f"Bearer {token}"),)

        def agent(name: str, pki: Pki, cn: str) -> Proc:
            cert, key = pki.issue(cn)
            proc = Proc(
                [str(BIN / "easytask-agentd"), "--server", f"localhost:{agent_port}",
                 "--home", str(tmp_path / f"agent-{name}-{pki.name}"), "--name", name,
                 "--queues", "q1", "--tls-ca", str(ca.ca_file), "--tls-cert", str(cert),
                 "--tls-key", str(key)],
                tmp_path / f"agent-{name}-{pki.name}.out", env,
            ).start()  # fmt: skip
            procs.append(proc)
            return proc

        def online() -> set[str]:
            listed = api.ListAgents(pb.ListAgentsRequest(), metadata=md).agents
            return {a.name for a in listed if a.status == "online"}

        good = agent("a1", ca, "a1")  # no token at all: the certificate is the credential
        wait_until("a1 online", lambda: "a1" in online())
        path = tmp_path / "t.json"
        path.write_text(json.dumps(task_json(1001, "t", "q1", "echo over mtls", tmp_path)))
        api.CreateTask(pb.CreateTaskRequest(task_json=path.read_text()), metadata=md)
        run_id = api.ForceRun(pb.ForceRunRequest(ref=pb.TaskRef(tid=1001)), metadata=md).run_id

        def final() -> pb.Run | None:
            run = api.GetRun(pb.GetRunRequest(run_id=run_id), metadata=md)
            return run if run.state in ("SUCCESS", "FAILED") else None

        run = wait_until("the run", final)
        assert (run.state, run.agent) == ("SUCCESS", "a1")

        wrong = agent("a2", ca, "someone-else")  # a certificate for another name
        assert wrong.popen is not None and wrong.popen.wait(timeout=30) == 3
        assert "this certificate belongs to agent 'someone-else', not 'a2'" in wrong.output()

        stranger = agent("a3", foreign, "a3")  # the right name, another CA
        wait_until("two refused handshakes", lambda: stranger.output().count("reconnecting") >= 2)
        assert stranger.alive() and online() == {"a1"}
        assert good.alive()
        channel.close()
    finally:
        for proc in reversed(procs):
            proc.stop()
