"""vidcolor studio's HTTP API through Flask's test client: hints and keyframes saved in the files the command line
reads, previews that follow the hints, render with progress and cancel, and every refusal of the security rules
(token, Host, Origin, sizes, no paths). Plus the real server's lifetime, and the CLI's start and Ctrl-C."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from media import make_clip, read_video, still, write_image
from vidcolor.guidance import hex_to_chroma, list_keyframes, read_keyframe
from vidcolor.studio.project import FrameIndex, Project
from vidcolor.studio.server import MAX_JSON_BYTES, Session, Studio, create_app

PORT = 5000
BASE = f"http://127.0.0.1:{PORT}"
ORIGIN = {"Origin": BASE}
TOKEN = "test-token"
# A hinted pixel shows the hint's hue; its strength can be less where the picture's luma leaves no room for it (a
# saturated blue on a light gray clips to a paler blue), and JPEG moves it a little.
HUE_TOLERANCE_DEGREES = 12.0


class Client:
    """A test client logged in the way a browser is: the token address first, then the cookie."""

    def __init__(self, session: Session):
        self.session = session
        self.app = create_app(session)
        self.http = self.app.test_client()

    def login(self):
        response = self.http.get("/?token=" + TOKEN, base_url=BASE)
        assert response.status_code == 303 and response.headers["Location"] == "/"
        return response

    def get(self, url, **kw):
        return self.http.get(url, base_url=BASE, **kw)

    def put_json(self, url, data, headers=ORIGIN):
        return self.http.put(url, base_url=BASE, data=json.dumps(data), content_type="application/json",
                             headers=headers)

    def send(self, method, url, headers=ORIGIN, **kw):
        return self.http.open(url, method=method, base_url=BASE, headers=headers, **kw)


def open_session(source, colorizer) -> Session:
    session = Session(Project.open(source), colorizer, size=64, token=TOKEN)
    session.bind("127.0.0.1", PORT)
    return session


def close_session(session: Session) -> None:
    session.close()
    frames = getattr(session.project, "frames", None)
    if frames is not None:
        frames.close()


@pytest.fixture
def video(clip_with_audio, tmp_path) -> Path:
    """A private copy: the studio writes its project folder and output beside its input."""
    return Path(shutil.copy(clip_with_audio, tmp_path / "film.mp4"))


@pytest.fixture
def client(video, hinted_colorizer):
    session = open_session(video, hinted_colorizer)
    client = Client(session)
    client.login()
    yield client
    close_session(session)


def wait_render(client, states=("done", "failed", "cancelled"), timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get("/api/render").get_json()
        if status["state"] in states:
            return status
        time.sleep(0.05)
    raise AssertionError(f"render still {status} after {timeout_s} s")


def decode_jpeg(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def chroma_at(rgb: np.ndarray, x: int, y: int) -> tuple[float, float]:
    r, g, b = rgb[y, x].astype(float) / 255.0
    return hex_to_chroma("#%02x%02x%02x" % tuple(int(round(v * 255)) for v in (r, g, b)))


def shows_colour(rgb: np.ndarray, x: int, y: int, colour: str) -> bool:
    """True if the pixel has the colour's hue (chroma angle) and at least half its strength."""
    got, want = np.array(chroma_at(rgb, x, y)), np.array(hex_to_chroma(colour))
    angle = np.degrees(np.arccos(np.clip(got @ want / (np.linalg.norm(got) * np.linalg.norm(want) + 1e-9), -1, 1)))
    return angle < HUE_TOLERANCE_DEGREES and np.linalg.norm(got) > 0.5 * np.linalg.norm(want)


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


# ---------------------------------------------------------------------------------------------------------------
# hints, keyframes, previews


def test_page_and_project(client, video):
    page = client.get("/")
    assert page.status_code == 200 and b"vidcolor studio" in page.data
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert client.get("/studio.js").status_code == 200 and client.get("/studio.css").status_code == 200
    project = client.get("/api/project").get_json()
    assert project["kind"] == "video" and project["count"] == 12
    assert (project["width"], project["height"]) == (64, 48)
    assert project["output"] == str(video.with_name("film.colour.mp4"))


def test_hints_round_trip_in_the_keyframes_format(client, video):
    points = {"points": [{"x": 10, "y": 20, "color": "#C32", "radius": 3}, {"x": 50.5, "y": 5, "color": "#2850c8"}]}
    saved = client.put_json("/api/picture/4/hints", points)
    assert saved.status_code == 200, saved.get_json()
    expected = [{"x": 10, "y": 20, "color": "#cc3322", "radius": 3}, {"x": 50.5, "y": 5, "color": "#2850c8", "radius": 2.0}]
    assert saved.get_json() == {"points": expected, "kind": "points"}
    assert client.get("/api/picture/4/hints").get_json() == {"points": expected, "kind": "points"}
    folder = video.with_name("film.mp4.vidcolor") / "keyframes"
    assert list_keyframes(folder) == {4: folder / "4.json"}  # the command line's reader
    hints = read_keyframe(folder / "4.json", 64, 48)
    assert [(p.x, p.y, p.radius) for p in hints.points] == [(10, 20, 3), (50.5, 5, 2.0)]
    assert client.get("/api/keyframes").get_json() == {"keyframes": [4]}
    assert [f.name for f in folder.iterdir()] == ["4.json"]  # no temporary file left


def test_a_new_session_finds_what_was_saved(client, video, hinted_colorizer):
    client.put_json("/api/picture/7/hints", {"points": [{"x": 1, "y": 2, "color": "#00ff00"}]})
    assert client.send("POST", "/api/picture/2/keyframe").status_code == 200
    again = open_session(video, hinted_colorizer)
    try:
        reloaded = Client(again)
        reloaded.login()
        assert reloaded.get("/api/keyframes").get_json() == {"keyframes": [2, 7]}
        assert reloaded.get("/api/picture/7/hints").get_json()["points"][0]["color"] == "#00ff00"
        assert reloaded.get("/api/picture/2/hints").get_json() == {"points": [], "kind": "points"}
    finally:
        close_session(again)


def test_preview_follows_a_point(client):
    before = decode_jpeg(client.get("/api/picture/3/colour.jpg").data)
    assert before.shape == (48, 64, 3)
    for colour in ("#2850c8", "#c83c28"):
        client.put_json("/api/picture/3/hints", {"points": [{"x": 30, "y": 20, "color": colour, "radius": 2}]})
        after = decode_jpeg(client.get("/api/picture/3/colour.jpg").data)
        assert shows_colour(after, 30, 20, colour), chroma_at(after, 30, 20)
        assert not np.array_equal(before, after)
    gray = decode_jpeg(client.get("/api/picture/3/gray.jpg").data)
    assert np.abs(gray.astype(int) - gray[..., :1]).max() <= 2  # gray really is gray
    thumb = decode_jpeg(client.get("/api/picture/3/gray.jpg?width=32").data)
    assert thumb.shape == (24, 32, 3)


def test_keyframe_image_replaces_points_and_is_read_by_the_command_line(client, video):
    client.put_json("/api/picture/5/hints", {"points": [{"x": 1, "y": 2, "color": "#00ff00"}]})
    colour = still(width=128, height=96, colour=True)  # twice the frame's size, same aspect ratio
    response = client.send("PUT", "/api/picture/5/keyframe-image", data=png_bytes(colour),
                           content_type="image/png", headers={**ORIGIN, "X-File-Name": "painted%20frame.png"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"points": [], "kind": "image"}
    folder = video.with_name("film.mp4.vidcolor") / "keyframes"
    assert list_keyframes(folder) == {5: folder / "5.png"}
    assert read_keyframe(folder / "5.png", 64, 48).mask.shape == (96, 128)
    # Points on a frame whose colour comes from an image: refused, the image kept.
    refused = client.put_json("/api/picture/5/hints", {"points": []})
    assert refused.status_code == 422 and "remove it" in refused.get_json()["error"]
    assert (folder / "5.png").exists()
    assert client.send("DELETE", "/api/picture/5/hints").status_code == 200
    assert list_keyframes(folder) == {}


def test_image_hints_are_what_vidcolor_image_reads(tmp_path, hinted_colorizer, hinted_checkpoint, cli):
    src = write_image(tmp_path / "photo.png", still(64, 48))
    session = open_session(src, hinted_colorizer)
    try:
        client = Client(session)
        client.login()
        assert client.get("/api/project").get_json()["kind"] == "image"
        client.put_json("/api/picture/0/hints", {"points": [{"x": 40, "y": 10, "color": "#2850c8", "radius": 2}]})
        hints = tmp_path / "photo.png.vidcolor" / "hints.json"
        out = tmp_path / "out.png"
        cli.ok(cli.invoke("image", src, "-o", out, "--hints", hints, "--weights", hinted_checkpoint, "--size", 64))
        rgb = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
        assert shows_colour(rgb, 40, 10, "#2850c8"), chroma_at(rgb, 40, 10)
        client.send("POST", "/api/render")
        status = wait_render(client)
        assert status["state"] == "done" and status["output"] == str(tmp_path / "photo.colour.png")
        assert np.array_equal(cv2.imread(status["output"]), cv2.imread(str(out)))  # the render is the CLI's result
    finally:
        close_session(session)


def test_folder_of_images(tmp_path, hinted_colorizer):
    folder = tmp_path / "scans"
    folder.mkdir()
    write_image(folder / "a.png", still(64, 48))
    write_image(folder / "b.jpg", still(40, 30))
    (folder / "notes.txt").write_text("not an image")
    session = open_session(folder, hinted_colorizer)
    try:
        client = Client(session)
        client.login()
        project = client.get("/api/project").get_json()
        assert project["kind"] == "images" and project["names"] == ["a.png", "b.jpg"]
        assert client.put_json("/api/picture/1/hints", {"points": [{"x": 39, "y": 29, "color": "#c83c28"}]}).status_code == 200
        assert (tmp_path / "scans.vidcolor" / "hints" / "b.json").is_file()
        outside = client.put_json("/api/picture/1/hints", {"points": [{"x": 40, "y": 29, "color": "#c83c28"}]})
        assert outside.status_code == 422 and "outside the 40x30 picture" in outside.get_json()["error"]
        client.send("POST", "/api/render")
        status = wait_render(client)
        assert status["state"] == "done" and status["done"] == 2
        assert sorted(p.name for p in (tmp_path / "scans.colour").iterdir()) == ["a.png", "b.jpg"]
    finally:
        close_session(session)


def test_shots_strip_has_the_scene_cut(tmp_path, hinted_colorizer):
    from test_frames import CUT_AT, two_shots

    clip = make_clip(tmp_path / "two shots.mp4", frames=12, pattern=two_shots)
    session = open_session(clip, hinted_colorizer)
    try:
        client = Client(session)
        client.login()
        deadline = time.monotonic() + 60
        while not (shots := client.get("/api/shots").get_json())["ready"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert shots == {"ready": True, "starts": [0, CUT_AT]}
    finally:
        close_session(session)


def test_frames_by_index_match_the_pipelines_numbering(video):
    from vidcolor.color import limited_to_full_luma
    from vidcolor.video_io import VideoReader

    with VideoReader(video, with_audio=False) as reader:
        expected = [np.rint(limited_to_full_luma(frame.luma) * 255).astype(np.uint8) for kind, frame in reader]
    frames = FrameIndex(video)
    try:
        assert len(frames) == len(expected) == 12
        for index in (7, 0, 11, 3, 4, 2, 11):  # seeking backwards and forwards
            assert np.array_equal(frames._read(index), expected[index]), index
    finally:
        frames.close()


# ---------------------------------------------------------------------------------------------------------------
# render


def test_render_with_progress(client, video):
    started = client.send("POST", "/api/render").get_json()
    assert started["state"] == "running" and started["total"] == 12
    status = wait_render(client)
    assert status == {**status, "state": "done", "done": 12, "output": str(video.with_name("film.colour.mp4"))}
    out = read_video(Path(status["output"]))
    assert len(out["y"]) == 12 and out["has_audio"]


def test_render_cancel_removes_the_partial_output(client, video, monkeypatch):
    from vidcolor.studio import jobs

    reached, release = threading.Event(), threading.Event()
    progress = jobs.Render._progress

    def held(render, done):  # the render stops at frame 3 until the test has pressed Cancel
        if done == 3:
            reached.set()
            release.wait(30)
        progress(render, done)

    monkeypatch.setattr(jobs.Render, "_progress", held)
    client.send("POST", "/api/render")
    assert reached.wait(60)
    busy = client.send("POST", "/api/render")
    assert busy.status_code == 409 and "already running" in busy.get_json()["error"]
    assert client.send("DELETE", "/api/render").status_code == 200
    release.set()
    status = wait_render(client)
    assert status["state"] == "cancelled" and status["done"] == 3
    assert sorted(p.name for p in video.parent.iterdir()) == ["film.mp4"]  # no output, no partial file
    # A new render after a cancel runs to the end.
    client.send("POST", "/api/render")
    assert wait_render(client)["state"] == "done"


def test_render_uses_the_keyframes(client, video, cli, hinted_checkpoint):
    """What the page saved is what the render follows: a point's colour at its keyframe in the output; and the
    command line, given the project's keyframes folder, renders the same video."""
    from vidcolor.color import plane_to_chroma

    colour = "#2850c8"
    client.put_json("/api/picture/5/hints", {"points": [{"x": 32, "y": 24, "color": colour, "radius": 4}]})
    client.send("POST", "/api/render")
    status = wait_render(client)
    assert status["state"] == "done", status
    out = read_video(Path(status["output"]))
    cb = plane_to_chroma(out["u"][5][12, 16], limited=True)  # 4:2:0: the chroma sample of pixel (32, 24)
    cr = plane_to_chroma(out["v"][5][12, 16], limited=True)
    got, want = np.array([cb, cr]), np.array(hex_to_chroma(colour))
    assert np.linalg.norm(got - want) < 0.05, (got, want)
    from_cli = video.with_name("from-cli.mp4")
    cli.ok(cli.invoke(video, from_cli, "--keyframes", video.with_name("film.mp4.vidcolor") / "keyframes",
                      "--weights", hinted_checkpoint, "--size", 64, "--device", "cpu", "--quiet"))
    again = read_video(from_cli)
    assert all(np.array_equal(a, b) for a, b in zip(out["u"] + out["v"], again["u"] + again["v"]))


def test_render_cancel_during_the_keyframes_first_pass(client, video, monkeypatch):
    from vidcolor.studio import jobs

    reached, release = threading.Event(), threading.Event()
    progress = jobs.Render._progress

    def held(render, done):  # the first call comes from the keyframes' first pass, before anything is written
        if not reached.is_set():
            reached.set()
            release.wait(30)
        progress(render, done)

    monkeypatch.setattr(jobs.Render, "_progress", held)
    client.send("POST", "/api/picture/6/keyframe")
    client.send("POST", "/api/render")
    assert reached.wait(60)
    client.send("DELETE", "/api/render")
    release.set()
    status = wait_render(client)
    assert status["state"] == "cancelled" and status["done"] == 0
    # No output, no partial file, no keyframe cache: only the input and its project folder.
    assert sorted(p.name for p in video.parent.iterdir()) == ["film.mp4", "film.mp4.vidcolor"]


# ---------------------------------------------------------------------------------------------------------------
# refusals


def test_token_moves_to_a_cookie(video, hinted_colorizer):
    session = open_session(video, hinted_colorizer)
    try:
        client = Client(session)
        response = client.login()
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith(f"vidcolor-studio-{PORT}={TOKEN};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.get("/api/project").status_code == 200
    finally:
        close_session(session)


@pytest.mark.parametrize("url", ["/", "/studio.js", "/api/project", "/api/picture/0/gray.jpg", "/api/render"])
def test_no_token_no_access(video, hinted_colorizer, url):
    session = open_session(video, hinted_colorizer)
    try:
        client = Client(session)
        response = client.get(url)
        assert response.status_code == 403 and "access token" in response.get_json()["error"]
        wrong = client.get("/?token=guess")
        assert wrong.status_code == 403 and "wrong access token" in wrong.get_json()["error"]
        assert "Set-Cookie" not in wrong.headers
        client.http.set_cookie(f"vidcolor-studio-{PORT}", "guess", domain="127.0.0.1")
        assert client.get(url).status_code == 403
    finally:
        close_session(session)


@pytest.mark.parametrize("host", ["evil.example:5000", "127.0.0.1:5001", "127.0.0.1", "attacker.test"])
def test_foreign_host_is_refused(client, host):
    # DNS rebinding: a page at evil.example whose name now points at 127.0.0.1 sends its own Host.
    response = client.get("/api/project", headers={"Host": host})
    assert response.status_code == 403 and "Host" in response.get_json()["error"]


def test_localhost_is_this_server(client):
    # Its own Host passes; the cookie (set for 127.0.0.1) is not sent to localhost, so the token is asked for.
    response = client.get("/api/project", headers={"Host": f"localhost:{PORT}"})
    assert response.status_code == 403 and "access token" in response.get_json()["error"]
    login = client.http.get("/?token=" + TOKEN, base_url=f"http://localhost:{PORT}")
    assert login.status_code == 303
    assert client.http.get("/api/project", base_url=f"http://localhost:{PORT}").status_code == 200


def test_cross_site_requests_are_refused(client, video):
    evil = client.get("/api/project", headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and "another site" in evil.get_json()["error"]
    other_port = client.put_json("/api/picture/0/hints", {"points": []}, headers={"Origin": "http://127.0.0.1:5001"})
    assert other_port.status_code == 403
    no_origin = client.put_json("/api/picture/0/hints", {"points": []}, headers={})
    assert no_origin.status_code == 403 and "Origin" in no_origin.get_json()["error"]
    for method, url in (("POST", "/api/render"), ("DELETE", "/api/picture/0/hints"), ("POST", "/api/picture/0/keyframe")):
        assert client.send(method, url, headers={}).status_code == 403, url
    fetch_metadata = client.get("/api/project", headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch_metadata.status_code == 403
    assert not video.with_name("film.mp4.vidcolor").exists()  # nothing was written
    assert client.get("/api/render").get_json()["state"] == "idle"


def test_bodies_are_limited_and_checked(client, video):
    def error(response, status):
        assert response.status_code == status, (response.status_code, response.get_json())
        return response.get_json()["error"]

    big = {"points": [], "padding": "x" * MAX_JSON_BYTES}
    assert "too large" in error(client.put_json("/api/picture/0/hints", big), 413)
    assert "JSON" in error(client.send("PUT", "/api/picture/0/hints", data="{}", content_type="text/plain"), 415)
    assert "not valid JSON" in error(client.send("PUT", "/api/picture/0/hints", data="{nope",
                                                 content_type="application/json"), 400)
    assert "\"points\" list" in error(client.put_json("/api/picture/0/hints", ["x"]), 422)
    assert "not a colour" in error(client.put_json("/api/picture/0/hints",
                                                   {"points": [{"x": 1, "y": 1, "color": "red"}]}), 422)
    assert "outside the 64x48" in error(client.put_json("/api/picture/0/hints",
                                                        {"points": [{"x": 64, "y": 1, "color": "#fff"}]}), 422)
    many = {"points": [{"x": 1, "y": 1, "color": "#fff"}] * 2001}
    assert "at most 2000" in error(client.put_json("/api/picture/0/hints", many), 422)
    assert not video.with_name("film.mp4.vidcolor").exists()


def test_uploads_are_limited_and_checked(client, video):
    def upload(data, content_type="image/png"):
        return client.send("PUT", "/api/picture/0/keyframe-image", data=data, content_type=content_type)

    assert upload(b"GIF89a...", "image/gif").status_code == 415
    not_png = upload(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    assert not_png.status_code == 422 and "damaged or truncated PNG" in not_png.get_json()["error"]
    assert "not a PNG or JPEG" in upload(b"hello").get_json()["error"]
    # A PNG header that claims 100000 x 100000 pixels: refused before anything is decoded.
    bomb = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + (100000).to_bytes(4, "big") * 2 + b"\x08\x02\0\0\0"
    assert "too large" in upload(bomb).get_json()["error"]
    square = upload(png_bytes(still(48, 48, colour=True)))
    assert square.status_code == 422 and "aspect ratio" in square.get_json()["error"]
    client.app.config["MAX_CONTENT_LENGTH"] = 1000  # the framework's own limit, lowered so the test stays small
    too_big = upload(png_bytes(still(64, 48, colour=True)) + b"\0" * 2000)
    assert too_big.status_code == 413 and "too large" in too_big.get_json()["error"]
    assert not video.with_name("film.mp4.vidcolor").exists()


@pytest.mark.parametrize("url", ["/api/picture/12/hints", "/api/picture/99999/colour.jpg", "/api/picture/-1/hints",
                                 "/api/picture/..%2F..%2Fetc%2Fpasswd/hints", "/static/studio.js",
                                 "/../pyproject.toml", "/api/picture/0/gray.jpg/../../../film.mp4"])
def test_no_way_to_other_files(client, url):
    response = client.get(url)
    assert response.status_code == 404, (url, response.status_code)
    assert response.mimetype == "application/json"


def test_thumbnail_width_is_bounded(client):
    assert client.get("/api/picture/0/gray.jpg?width=100000").status_code == 400


# ---------------------------------------------------------------------------------------------------------------
# the real server and the command


def test_server_listens_on_loopback_and_stops(video, hinted_colorizer):
    studio = Studio(Project.open(video), hinted_colorizer, size=64)
    port = studio.session.port
    with studio:
        assert studio.server.server_address[0] == "127.0.0.1" and port > 0
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(studio.url, timeout=10) as page:  # follows the redirect with the cookie
            assert page.status == 200 and page.url.endswith(f":{port}/")
        with opener.open(f"http://127.0.0.1:{port}/api/project", timeout=10) as response:
            assert json.load(response)["count"] == 12
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_cli_refuses_bad_input_and_weights_without_hints(cli, tmp_path, checkpoint):
    message = cli.error(cli.invoke("studio", tmp_path / "missing.mp4", "--no-browser", "--weights", checkpoint))
    assert "missing.mp4 does not exist" in message
    clip = make_clip(tmp_path / "clip.mp4", frames=2)
    message = cli.error(cli.invoke("studio", clip, "--no-browser", "--weights", checkpoint))
    assert "take no colour hints" in message


def test_every_address_is_refused(video, hinted_colorizer):
    from vidcolor.errors import OutputError

    with pytest.raises(OutputError, match="listens on every address"):
        Studio(Project.open(video), hinted_colorizer, host="0.0.0.0")


def test_run_studio_warns_for_another_host_and_opens_the_browser(video, hinted_checkpoint, monkeypatch):
    import webbrowser

    import vidcolor.studio.server as server
    from vidcolor.studio import run_studio

    started = []

    class Recorded:  # a Studio that records how it was asked to serve, without binding anything
        def __init__(self, project, colorizer, size, host, port):
            self.url = f"http://{host}:{port}/?token=t"
            started.append(self)

        def serve_forever(self):
            self.served = True

        def stop(self):
            self.stopped = True

    monkeypatch.setattr(server, "Studio", Recorded)
    opened = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    for host, warned in (("192.168.1.20", True), ("127.0.0.2", False), ("::1", False)):
        lines = []
        run_studio(video, port=8123, open_browser=True, weights=str(hinted_checkpoint), device="cpu", host=host,
                   echo=lines.append)
        assert any(line.startswith("warning: the studio listens on") for line in lines) is warned, lines
        assert started[-1].served and started[-1].stopped and lines[-1] == "studio stopped"
        assert opened[-1] == started[-1].url
    lines = []
    run_studio(video, open_browser=False, weights=str(hinted_checkpoint), device="cpu", echo=lines.append)
    assert len(opened) == 3  # --no-browser: only printed
    assert any(started[-1].url in line for line in lines)


def test_cli_serves_until_ctrl_c(video, hinted_checkpoint):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "vidcolor", "studio", str(video), "--no-browser", "--weights",
                                str(hinted_checkpoint), "--size", "64"], stderr=subprocess.PIPE, text=True, env=env)
    watchdog = threading.Timer(120, process.kill)  # a hung start must not hang the suite
    watchdog.start()
    try:
        address = None
        for line in process.stderr:
            if "open http://" in line:
                address = line.split("open ", 1)[1].strip()
                break
        assert address and address.startswith("http://127.0.0.1:")
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(address, timeout=30) as page:
            assert page.status == 200
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=30)[1]
        assert process.returncode == 0, rest
        assert "studio stopped" in rest and "Traceback" not in rest
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
