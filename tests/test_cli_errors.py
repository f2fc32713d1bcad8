"""CLI error paths from issue 16, through the real `globe` executable: one redacted line, exit 2.

Unreachable services are closed loopback ports; credentials are written into their URLs the way
operators do (`http://user:pass@host`), and must never be printed back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from _serve_helpers import png_bytes
from _servers import free_port

GLOBE = str(Path(sys.executable).with_name("globe"))


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {**os.environ, "NO_PROXY": "127.0.0.1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
            "AWS_MAX_ATTEMPTS": "1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**base, **env})


def assert_one_clean_line(out: subprocess.CompletedProcess, fragment: str, secret: str | None = None) -> None:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, out.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], out.stderr[-3000:]
    assert "Traceback" not in out.stderr + out.stdout
    if secret:
        assert secret not in out.stderr + out.stdout


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes())
    return path


def test_unreachable_mlflow_registry_is_one_line_without_the_password(tmp_path, photo):
    env = {"MLFLOW_TRACKING_URI": f"http://alice:hunter2@127.0.0.1:{free_port()}/"}
    none = str(tmp_path / "none.yaml")
    cases = [
        [GLOBE, "predict", str(photo), "--model", "models:/globe@champion", "--params", none],
        [GLOBE, "serve", "--model", "models:/globe@champion", "--port", str(free_port()), "--params", none],
        [GLOBE, "resolve", "models:/globe@champion"],
        [sys.executable, "-m", "globe.serve", "--model", "models:/globe@champion", "--http_port", str(free_port()), "--params", none],
    ]
    for args in cases:
        assert_one_clean_line(run(args, tmp_path, **env), "http://***@127.0.0.1", secret="hunter2")


def test_unreachable_openai_engine_and_s3_endpoint_are_one_line(tmp_path, photo):
    none = str(tmp_path / "none.yaml")
    closed = free_port()
    engine = run([GLOBE, "predict", str(photo), "--model", "served-name", "--params", none, "--set", "serve.engine=openai",
                  "--set", f"serve.base_url=http://bob:pw123@127.0.0.1:{closed}/v1", "--set", "serve.retries=0"], tmp_path)  # fmt: skip
    assert_one_clean_line(engine, "generation failed", secret="pw123")
    s3 = run([GLOBE, "predict", str(photo), "--model", "s3://bucket/model", "--params", none], tmp_path,
             AWS_ENDPOINT_URL=f"http://carol:pw456@127.0.0.1:{closed}")  # fmt: skip
    assert_one_clean_line(s3, "cannot list objects", secret="pw456")


def test_eval_score_names_file_and_line_for_unreadable_input(tmp_path):
    header = "id,lat,lon,pred_lat,pred_lon\n"
    (tmp_path / "wide.csv").write_text(header + "a,1,2,3,4\n" + 'b,1,2,"' + "x" * 140_000 + '",4\n')
    (tmp_path / "latin1.csv").write_bytes((header + "a,1,2,3,4\n").encode() + "b\xe9,1,2,3,4\n".encode("latin-1"))
    (tmp_path / "long.jsonl").write_text('{"id": "a", "lat": 1, "lon": 2, "pred_lat": 1, "pred_lon": 2}\n'
                                         '{"id": "b", "lat": 1, "lon": 2, "output": "' + "x" * 3_000_000 + '"}\n')  # fmt: skip
    cases = [
        ("wide.csv", "wide.csv: line 3: field larger than field limit"),
        ("latin1.csv", "latin1.csv: line 3: not valid UTF-8"),
        ("long.jsonl", "long.jsonl: line 2 is longer than 1048576 bytes"),
    ]
    for name, fragment in cases:
        out = run([GLOBE, "eval", "score", "-p", str(tmp_path / name), "-o", str(tmp_path / "m.json")], tmp_path)
        assert_one_clean_line(out, fragment)
        assert not (tmp_path / "m.json").exists()


def test_serve_on_a_port_in_use_says_so_before_loading_the_model(tmp_path):
    """It used to load the model first, then exit 3 with uvicorn's `[Errno 98]`; the missing
    model below would be reported if it were loaded before the port is checked."""
    import socket

    none = str(tmp_path / "none.yaml")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for args in ([GLOBE, "serve", "--model", str(tmp_path / "no-model"), "--port", str(port), "--params", none],
                     [sys.executable, "-m", "globe.serve", "--model", str(tmp_path / "no-model"), "--http_port", str(port), "--params", none]):  # fmt: skip
            assert_one_clean_line(run(args, tmp_path), f"cannot listen on 127.0.0.1:{port}")


def test_model_management_without_a_token_does_not_start(tmp_path):
    none = str(tmp_path / "none.yaml")
    args = [GLOBE, "serve", "--model", str(tmp_path / "no-model"), "--port", str(free_port()), "--params", none, "--set", "serve.model_management=true"]
    for env in ({"GLOBE_MANAGEMENT_TOKEN": ""}, {"GLOBE_MANAGEMENT_TOKEN": "short"}):
        assert_one_clean_line(run(args, tmp_path, **env), "serve.model_management is on but $GLOBE_MANAGEMENT_TOKEN")


def test_both_server_entrypoints_call_the_one_launcher(monkeypatch, tmp_path):
    """`globe serve` and `python -m globe.serve` (the KServe pod) only parse their arguments: the same
    options reach `globe.serve.launch.launch` (issue 23)."""
    from typer.testing import CliRunner

    from globe.cli import app
    from globe.serve import __main__ as pod
    from globe.serve import launch

    calls = []
    monkeypatch.setattr(launch, "launch", lambda model, **kwargs: calls.append((model, kwargs)))
    none = str(tmp_path / "none.yaml")
    result = CliRunner().invoke(app, ["serve", "--model", "m", "--params", none, "--set", "serve.max_batch_size=2", "--port", "9001"])
    assert result.exit_code == 0, result.output
    pod.main(["--model", "m", "--params", none, "--set", "serve.max_batch_size=2", "--http_port", "9001"])
    (cli_model, cli), (pod_model, from_pod) = calls
    assert cli_model == pod_model == "m"
    assert {**cli, "params": str(cli["params"]), "name": None} == from_pod
    assert cli["grpc_port"] == launch.GRPC_PORT and cli["host"] == launch.HOST and not cli["enable_grpc"]


def test_both_server_entrypoints_fail_with_the_same_line(tmp_path):
    """One error handling: a missing model, a bad `--set` and no model at all read the same from both."""
    none = str(tmp_path / "none.yaml")
    cases = [
        (["--model", str(tmp_path / "no-model")], "no such directory"),
        (["--model", "m", "--set", "serve.no_such_key=1"], "serve.no_such_key"),
        ([], "--model is required"),
    ]
    for extra, fragment in cases:
        cli = run([GLOBE, "serve", "--port", str(free_port()), "--params", none, *extra], tmp_path)
        pod = run([sys.executable, "-m", "globe.serve", "--http_port", str(free_port()), "--params", none, *extra], tmp_path)
        assert cli.returncode == pod.returncode == 2, cli.stderr + pod.stderr
        assert cli.stderr == pod.stderr and cli.stderr.startswith("error: ") and fragment in cli.stderr, cli.stderr + pod.stderr
