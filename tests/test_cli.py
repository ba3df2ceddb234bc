"""The `umi` command: samples, render, serve's flags, and its errors (exit 2, one line, no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.support.servers import wait_until

from umi.cli import main
from umi.engines.process import free_port


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_samples_writes_a_json_list_of_input_target(trajectories_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["samples", "--role", "caller", str(trajectories_path)], capsys)
    assert code == 0 and err == ""
    data = json.loads(out)
    assert [sorted(d) for d in data] == [["input", "target"], ["input", "target"]]
    assert data[0]["target"].startswith("Action: get_weather_for_weather\nAction Input:")


def test_render_prints_the_exact_serving_prompt(trajectories_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["render", "--role", "summarizer", str(trajectories_path), "--index", "2"], capsys)
    assert code == 0
    assert out == (
        "system: Make a conclusion based on the conversation history:\n"
        "user: Book me a flight</s>assistant: No tool can book flights.\n Next: give up.</s> conclusion: "
    )
    code, out, _ = run(["render", "--role", "caller", "--no-system-prefix", str(trajectories_path), "--index", "1"], capsys)
    assert code == 0 and out.startswith("You have assess")
    assert "The thought of this step is:\nDone.\n Next: conclusion.\nBase on" in out


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("umi: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    code, _, err = run(["samples", "--role", "planner", str(missing)], capsys)
    _assert_one_line_error(code, err, str(missing), "no such file")


def test_bad_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"tools": []', encoding="utf-8")
    code, _, err = run(["samples", "--role", "planner", str(bad)], capsys)
    _assert_one_line_error(code, err, str(bad), "invalid JSON", "line 1")


def test_not_a_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "obj.json"
    bad.write_text('{"tools": []}', encoding="utf-8")
    code, _, err = run(["render", "--role", "planner", str(bad)], capsys)
    _assert_one_line_error(code, err, str(bad), "expected a JSON list")


@pytest.mark.parametrize(
    ("trajectory", "field"),
    [
        ({"tools": [], "conversations": [{"from": "robot", "value": "x"}]}, "conversations[0].from"),
        ({"tools": [], "conversations": [{"from": "user"}]}, "conversations[0].value"),
        ({"tools": [{"function": "f"}], "conversations": []}, "tools[0].Name"),
        ({"conversations": []}, "tools"),
    ],
)
def test_wrong_shape_names_trajectory_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], trajectory: dict, field: str
) -> None:
    good = {"tools": [], "conversations": [{"from": "user", "value": "q"}]}
    bad = tmp_path / "shape.json"
    bad.write_text(json.dumps([good, trajectory]), encoding="utf-8")
    code, _, err = run(["samples", "--role", "summarizer", str(bad)], capsys)
    _assert_one_line_error(code, err, str(bad), "trajectory 1", field)


def test_render_index_out_of_range(trajectories_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["render", "--role", "planner", str(trajectories_path), "--index", "7"], capsys)
    _assert_one_line_error(code, err, "--index 7", "3 trajectories")


def test_render_caller_needs_a_planner_turn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "t.json"
    f.write_text(json.dumps([{"tools": [], "conversations": [{"from": "user", "value": "q"}]}]), encoding="utf-8")
    code, _, err = run(["render", "--role", "caller", str(f)], capsys)
    _assert_one_line_error(code, err, "trajectory 0", "conversations", "planner turn")


def test_installed_command_runs_as_a_process(trajectories_path: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "umi.cli", "samples", "--role", "summarizer", str(trajectories_path)],
        capture_output=True, text=True, check=False,
    )
    assert ok.returncode == 0 and len(json.loads(ok.stdout)) == 1
    bad = subprocess.run(
        [sys.executable, "-m", "umi.cli", "samples", "--role", "summarizer", str(tmp_path / "x.json")],
        capture_output=True, text=True, check=False,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


def test_serve_orchestrator_help_lists_its_settings_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "orchestrator", "--redis-url", "redis://r:6379/0", "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    for flag in ("--host", "--port", "--workers", "--redis-url", "--planner-url", "--api-keys", "--log-level"):
        assert flag in out
    assert "UMI_REDIS_URL" in out


def test_serve_orchestrator_uses_the_redis_url_flag(tmp_path: Path) -> None:
    port, dead_redis = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMI_")}
    log = (tmp_path / "orchestrator.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "umi.cli", "serve", "orchestrator", "--port", str(port),
         "--redis-url", f"redis://127.0.0.1:{dead_redis}/0", "--redis-timeout-s", "0.5", "--retry-after-s", "4"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/health"), 60, "the orchestrator to start")
        ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10)
        assert ready.status_code == 503 and ready.headers["retry-after"] == "4"
        assert f"{dead_redis}" in ready.json()["redis"] and ready.json()["error"]["type"] == "unavailable"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_with_a_bad_flag_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "orchestrator", "--max-tools", "none"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith("umi serve orchestrator: error: UMI_MAX_TOOLS: ") and err.count("\n") == 1
