"""--ray on a real two-node Ray cluster on this machine (a head and one worker node, 127.0.0.1 only, one CPU each,
a bounded lifetime, both stopped at the end): a batch of generated clips with a broken file among them, the worker
node killed mid-job, and every good clip still complete and equal, frame for frame, to the one-process run of the
same segment plan. Runs wherever Ray is installed (the dev extra pulls it in)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from media import read_video

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.cluster

# Seconds the cluster may live at most (`timeout` kills it even if the finalizer never runs), and may take to start.
CLUSTER_LIFETIME_S = 900
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_command() -> str:
    """Ray's command beside this Python (a virtual environment's bin may not be on PATH), else the one on PATH."""
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else "ray"


def start_node(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    """`ray start ... --block` in its own session, so that the node's every process can be killed as a group."""
    return subprocess.Popen(["timeout", str(CLUSTER_LIFETIME_S), ray_command(), "start", "--block", *args],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop_node(node: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(node.pid, sig)
        except ProcessLookupError:
            return
        try:
            node.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(node.pid, signal.SIGKILL)  # ray start has exited; what it started may not have
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(address, worker node process) of a running two-node cluster."""
    import vidcolor

    temp = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths must fit in 107 characters
    port = free_port()
    address = f"127.0.0.1:{port}"
    source_root = str(Path(vidcolor.__file__).resolve().parents[1])  # the vidcolor under test, for Ray's workers
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1",
               # A killed node is noticed within seconds, not Ray's default of about 30.
               RAY_health_check_period_ms="500", RAY_health_check_timeout_ms="1000",
               RAY_health_check_failure_threshold="3")
    head = start_node(["--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
                       "--include-dashboard=false", f"--temp-dir={temp}"], temp / "head.log", env)
    worker = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "will now block" not in (temp / "head.log").read_text(errors="replace"):
            assert head.poll() is None and time.monotonic() < deadline, (temp / "head.log").read_text()
            time.sleep(0.5)
        worker = start_node([f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1"],
                            temp / "worker.log", env)
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert worker.poll() is None and time.monotonic() < deadline, (temp / "worker.log").read_text()
            time.sleep(0.5)
        yield address, worker
    finally:
        ray.shutdown()
        if worker is not None:
            stop_node(worker)
        stop_node(head)


def kill_when_it_works(out_dir: Path, node: subprocess.Popen, killed: list) -> threading.Thread:
    """Kill the worker node (every process of it) once one of its processes is in the middle of a segment: its
    progress file (frames so far and the writing process) names a process of the node's session."""

    def watch():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            for progress in out_dir.glob(".*.vidcolor-work/progress-*"):
                try:
                    count, pid = progress.read_text().split()
                    mid_segment = os.getsid(int(pid)) == node.pid and int(count) > 0
                except (OSError, ValueError):
                    continue
                if mid_segment:
                    os.killpg(node.pid, signal.SIGKILL)
                    killed.append(progress.name)
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_batch_on_two_nodes_survives_a_killed_node_and_equals_one_process(cluster, cli, tmp_path):
    from test_engine import make_gop_clip

    address, worker = cluster
    archive, out, expected_dir = tmp_path / "archive", tmp_path / "out", tmp_path / "expected"
    archive.mkdir()
    expected_dir.mkdir()
    clips = [make_gop_clip(archive / f"reel {k}.mp4", open_gop=k % 2 == 1, frames=32) for k in range(2)]
    (archive / "reel 9 (broken).mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(200))
    plan = ("--segment-frames", 8, "--crf", 0, "--batch-size", 3)
    expected = {}
    for clip in clips:  # the one-process run of the same plan
        cli.ok(cli.video(clip, expected_dir / clip.name, "--resume", *plan))
        expected[clip.name] = read_video(expected_dir / clip.name)

    killed: list = []
    watcher = kill_when_it_works(out, worker, killed)
    report = tmp_path / "report.json"
    result = cli.invoke("batch", archive, "-o", out, "--weights", cli.checkpoint, "--size", 64, "--quiet",
                        "--ray", address, "--report", report, *plan)
    watcher.join(1)
    assert killed, "the worker node was never seen in the middle of a segment"
    assert result.exit_code == 1, result.stderr  # the broken file
    files = {Path(f["input"]).name: f for f in json.loads(report.read_text())["files"]}
    assert {name: f["result"] for name, f in files.items()} == {"reel 0.mp4": "ok", "reel 1.mp4": "ok",
                                                                "reel 9 (broken).mp4": "error"}
    assert "reel 9 (broken).mp4" in files["reel 9 (broken).mp4"]["error"]
    print("nodes that wrote segments:", [files[c.name]["summary"].get("nodes") for c in clips],
          "segments per clip:", [files[c.name]["summary"]["segments"] for c in clips])
    for clip in clips:
        actual = read_video(out / clip.name)
        assert actual["pts"] == expected[clip.name]["pts"]
        for plane in "yuv":
            assert all(np.array_equal(a, b) for a, b in zip(expected[clip.name][plane], actual[plane])), plane
    assert sorted(p.name for p in out.iterdir()) == ["reel 0.mp4", "reel 1.mp4"]  # no work folder left


def test_a_segment_that_fails_on_the_cluster_fails_its_file_with_one_line(cluster, cli, tmp_path):
    from test_engine import make_size_change_ts

    address, _ = cluster
    src = make_size_change_ts(tmp_path / "joined.ts")
    message = cli.error(cli.video(src, tmp_path / "out.mp4", "--ray", address, "--segment-frames", 8))
    assert message.startswith("vidcolor: error: segment ") and "frame size changes mid-stream" in message
    assert not (tmp_path / "out.mp4").exists()


def test_unreachable_cluster_is_one_line(cli, clip_with_audio, tmp_path, monkeypatch):
    from vidcolor import cluster

    # A fresh connection attempt (the module's cluster may be connected already in this process).
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: (_ for _ in ()).throw(ConnectionError("no cluster\nmore")))
    message = cli.error(cli.video(clip_with_audio, tmp_path / "out.mp4", "--ray", "127.0.0.1:1"))
    assert message == "vidcolor: error: cannot connect to the Ray cluster at 127.0.0.1:1: no cluster"
    assert cluster.MAX_RETRIES == 3
    assert not list(tmp_path.iterdir())
