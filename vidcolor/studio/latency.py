"""Edit-to-preview latency of the studio, through the real server on 127.0.0.1, as the page experiences it:
PUT one point (a new colour each time), then GET the colorized preview; the time from sending the edit to having
the JPEG. The frame is shown once first (decoded and cached), as it is on the page before anyone clicks, and a
video's shot detection (a background pass at start) has finished.

    python -m vidcolor.studio.latency CLIP_OR_IMAGE --weights CHECKPOINT [--size 256] [--edits 12]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from pathlib import Path


def measure(source: Path, weights: str, size: int, edits: int, device: str = "cpu") -> dict:
    from ..colorizer import load_colorizer
    from .project import Project
    from .server import Studio

    with Studio(Project.open(source), load_colorizer(weights, device), size=size) as studio:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        opener.open(studio.url).read()
        base = f"http://127.0.0.1:{studio.session.port}"
        info = json.loads(opener.open(base + "/api/project").read())
        index = info["count"] // 2
        width, height = info.get("width"), info.get("height")
        if width is None:
            width, height = studio.session.project.picture(index).width, studio.session.project.picture(index).height
        opener.open(f"{base}/api/picture/{index}/colour.jpg").read()
        # A video's shots are found in the background at start; measured once they are, as the page is used.
        started = time.perf_counter()
        while not json.loads(opener.open(base + "/api/shots").read())["ready"]:
            time.sleep(0.1)
        shots_s = time.perf_counter() - started
        seconds = []
        for i in range(edits):
            point = {"x": width // 3 + i, "y": height // 2, "color": "#%02x3c28" % (100 + (10 * i) % 150)}
            start = time.perf_counter()
            request = urllib.request.Request(f"{base}/api/picture/{index}/hints", method="PUT",
                                             data=json.dumps({"points": [point]}).encode(),
                                             headers={"Content-Type": "application/json", "Origin": base})
            opener.open(request).read()
            opener.open(f"{base}/api/picture/{index}/colour.jpg?v={i}").read()
            seconds.append(time.perf_counter() - start)
        # Leave the user's folder as it was: the hints this wrote go again, and the folders made for them if empty.
        project = studio.session.project
        project.remove_hints(index)
        for folder in sorted((p for p in project.folder.rglob("*") if p.is_dir()), reverse=True) + [project.folder]:
            try:
                folder.rmdir()
            except OSError:  # not empty: it holds the user's own hints
                pass
    return {"source": str(source), "width": width, "height": height, "size": size, "edits": edits,
            "median_ms": round(statistics.median(seconds) * 1000), "max_ms": round(max(seconds) * 1000),
            "waited_for_shots_s": round(shots_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--weights", required=True, help="a checkpoint with a hint path")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--edits", type=int, default=12)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(json.dumps(measure(args.source, args.weights, args.size, args.edits, args.device)))


if __name__ == "__main__":
    main()
