"""vidcolor studio: a local web page to place colour points and keyframes and see the result at once.

run_studio() is what `vidcolor studio IN` calls: open the input, load the network once, serve the page on 127.0.0.1
until Ctrl-C. The page (static/) is plain HTML, CSS and JavaScript shipped in the package; the server (server.py) is a
client of the library: it reads and writes hints in the formats the command line reads (project.py) and renders with
colorize_video / colorize_image (jobs.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable



def is_loopback(host: str) -> bool:
    """True for an address only this computer can reach (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def run_studio(source, port: int = 0, open_browser: bool = True, weights: str = "default", device: str = "auto",
               size: int | None = None, host: str = "127.0.0.1", echo: Callable[[str], None] = print) -> None:
    """Serve the studio for source (a video, an image or a folder of images) until Ctrl-C (or SIGTERM); a render
    still running then is cancelled and its partial output removed."""
    from ..colorizer import load_colorizer
    from ..errors import Terminated, WeightsError
    from .project import Project
    from .server import Studio

    project = Project.open(Path(source))  # a bad input fails before the network loads
    colorizer = load_colorizer(weights, device)
    if not colorizer.takes_hints:
        raise WeightsError(f"weights {weights!r} take no colour hints, which the studio needs; "
                           "pass --weights with a checkpoint that has a hint path")
    studio = Studio(project, colorizer, size, host, port)
    try:
        if not is_loopback(host):
            echo(f"warning: the studio listens on {host}, not only on this computer: anyone who can reach it "
                 "and has the address below can read and change this project")
        echo(f"vidcolor studio for {project.source}: open {studio.url}")
        echo(f"project folder: {project.folder}; Ctrl-C stops the studio")
        if open_browser:
            import webbrowser

            webbrowser.open(studio.url)
        studio.serve_forever()  # returns on Ctrl-C: werkzeug's server takes the KeyboardInterrupt itself
    except (KeyboardInterrupt, Terminated):
        pass
    finally:
        studio.stop()
    echo("studio stopped")
