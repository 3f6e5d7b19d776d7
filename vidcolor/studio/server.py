"""The studio's web server: a Flask app over one Project, one Colorizer and one render at a time.

Flask (with its werkzeug server) because it is small, mature and well kept, serves a threaded server on a chosen
address with nothing else to install, and comes with a test client that drives every route without a socket.

Security, for a server that can read a user's film and write beside it:
  - it listens on 127.0.0.1 (another --host only when asked for, with a warning printed by the caller);
  - every request needs the access token: in the address printed at start (?token=...), which sets an HttpOnly,
    SameSite=Strict cookie and redirects to the bare page, then in that cookie (named per port: cookies do not
    tell ports apart);
  - a request whose Host is not the server's own address is refused (DNS rebinding), as is one whose Origin is
    another site's or, for anything that changes state, one without an Origin at all (cross-site requests);
  - no route takes a path: pictures are numbers into the inputs the server was started with (project.py), and the
    three static files are named in code;
  - request bodies have size limits (MAX_JSON_BYTES, MAX_UPLOAD_BYTES) and are checked as the command line checks
    hint files; every refusal is JSON {"error": "..."} that the page shows.
"""
from __future__ import annotations

import hmac
import json
import secrets
import threading
from importlib import resources
from urllib.parse import unquote

from flask import Flask, Response, jsonify, redirect, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..errors import InputError, OutputError, VidcolorError
from .jobs import Previews, Render, RenderBusy, Shots, encode_jpeg
from .project import Project

# A page's points for one picture: a few kilobytes; far more is a mistake or an attack.
MAX_JSON_BYTES = 256 * 1024
# A keyframe image: a 4K PNG is ~25 MB.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
# Thumbnails are asked for at a width (pixels); this is the largest a page may ask for.
MAX_THUMBNAIL_WIDTH = 640
STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                "/studio.js": ("studio.js", "text/javascript; charset=utf-8"),
                "/studio.css": ("studio.css", "text/css; charset=utf-8")}
# Nothing from elsewhere: no fonts, scripts or images from the internet, no framing by other pages.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                           "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


class Session:
    """Everything one running studio shares between requests."""

    def __init__(self, project: Project, colorizer, size: int | None, token: str | None = None):
        self.project = project
        self.colorizer = colorizer
        self.size = size
        self.token = token or secrets.token_urlsafe(24)
        self.hosts: set[str] = set()  # Host header values that are this server (set once the port is known)
        self.port = 0
        self.previews = Previews(project, colorizer, size or default_size(project))
        self.render = Render(project, colorizer, size)
        self.shots = Shots(project)

    def bind(self, host: str, port: int) -> None:
        self.port = port
        names = {host, "127.0.0.1", "localhost"} if host in ("127.0.0.1", "localhost") else {host}
        self.hosts = {f"[{name}]:{port}" if ":" in name else f"{name}:{port}" for name in names}  # IPv6 in brackets

    @property
    def cookie(self) -> str:
        return f"vidcolor-studio-{self.port}"

    def close(self) -> None:
        self.shots.stop()
        self.render.stop()
        self.previews.close()


def default_size(project: Project) -> int:
    from ..colorizer import DEFAULT_SIZE, DEFAULT_VIDEO_SIZE

    return DEFAULT_VIDEO_SIZE if project.kind == "video" else DEFAULT_SIZE


def refuse(status: int, message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    return response


def create_app(session: Session) -> Flask:
    # No static folder: the three files are served by name below, so no URL reaches the filesystem.
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES

    @app.before_request
    def guard():
        if request.host not in session.hosts:
            return refuse(403, f"refused: the Host {request.host!r} is not this studio's address")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in {f"http://{host}" for host in session.hosts}:
            return refuse(403, f"refused: a request from another site ({origin[:80]})")
        if request.method in UNSAFE_METHODS and origin is None:
            return refuse(403, "refused: a change without an Origin header (the page always sends one)")
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return refuse(403, "refused: a request from another site")
        given = request.args.get("token")
        if request.path == "/" and request.method == "GET" and given is not None:
            if not hmac.compare_digest(given.encode(), session.token.encode()):
                return refuse(403, "refused: wrong access token; open the address vidcolor studio printed")
            # The token moves from the address to a cookie, and the address bar loses it.
            response = redirect("/", code=303)
            response.set_cookie(session.cookie, session.token, httponly=True, samesite="Strict", path="/")
            return response
        cookie = request.cookies.get(session.cookie, "")
        if not hmac.compare_digest(cookie.encode(), session.token.encode()):
            return refuse(403, "refused: no access token; open the address vidcolor studio printed")
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(VidcolorError)
    def vidcolor_error(exc: VidcolorError):
        status = 409 if isinstance(exc, RenderBusy) else 500 if isinstance(exc, OutputError) else \
            404 if isinstance(exc, InputError) and str(exc).startswith("no picture") else 422
        return refuse(status, str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if isinstance(exc, RequestEntityTooLarge):
            return refuse(413, f"too large: at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
        return refuse(exc.code or 500, exc.description or exc.name)

    def static(path: str):
        name, mimetype = STATIC_FILES[path]
        data = resources.files(__package__).joinpath("static", name).read_bytes()
        return Response(data, mimetype=mimetype)

    for path in STATIC_FILES:
        app.add_url_rule(path, f"static {path}", lambda path=path: static(path), methods=["GET"])

    def json_body():
        if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
            return None, refuse(413, f"too large: a hints request is at most {MAX_JSON_BYTES // 1024} KB")
        if request.mimetype != "application/json":
            return None, refuse(415, "send JSON (Content-Type: application/json)")
        data = request.get_data(cache=False)
        if len(data) > MAX_JSON_BYTES:
            return None, refuse(413, f"too large: a hints request is at most {MAX_JSON_BYTES // 1024} KB")
        try:
            return json.loads(data), None
        except (ValueError, RecursionError):
            return None, refuse(400, "not valid JSON")

    @app.get("/favicon.ico")
    def favicon():  # browsers ask for it; the page has none, and a 404 would be logged as an error in the console
        return Response(status=204)

    @app.get("/api/project")
    def project():
        described = session.project.describe()
        described["size"] = session.size or default_size(session.project)
        return jsonify(described)

    @app.get("/api/shots")
    def shots():
        return jsonify(session.shots.state)

    @app.get("/api/picture/<int:index>/gray.jpg")
    def gray(index: int):
        width = request.args.get("width", type=int)
        if width is not None and not 1 <= width <= MAX_THUMBNAIL_WIDTH:
            return refuse(400, f"width must be 1 to {MAX_THUMBNAIL_WIDTH}")
        session.project.check_index(index)
        return Response(encode_jpeg(session.project.luma(index), width), mimetype="image/jpeg")

    @app.get("/api/picture/<int:index>/colour.jpg")
    def colour(index: int):
        session.project.check_index(index)
        return Response(session.previews.colour_jpeg(index), mimetype="image/jpeg")

    @app.get("/api/picture/<int:index>/hints")
    def get_hints(index: int):
        return jsonify(session.project.read_points(index))

    @app.put("/api/picture/<int:index>/hints")
    def put_hints(index: int):
        data, refused = json_body()
        if refused is not None:
            return refused
        return jsonify(session.project.save_points(index, data))

    @app.delete("/api/picture/<int:index>/hints")
    def delete_hints(index: int):
        session.project.remove_hints(index)
        return jsonify(points=[], kind=None)

    @app.post("/api/picture/<int:index>/keyframe")
    def mark_keyframe(index: int):
        if session.project.kind != "video":
            return refuse(400, "keyframes are for videos")
        return jsonify(session.project.mark_keyframe(index))

    @app.put("/api/picture/<int:index>/keyframe-image")
    def keyframe_image(index: int):
        if session.project.kind != "video":
            return refuse(400, "keyframe images are for videos")
        if request.mimetype not in ("image/png", "image/jpeg"):
            return refuse(415, "a keyframe image is a PNG or JPEG file")
        name = unquote(request.headers.get("X-File-Name", "upload"))[:200]  # the page URI-encodes it
        session.project.save_keyframe_image(index, request.get_data(cache=False), name)
        return jsonify(session.project.read_points(index))

    @app.get("/api/keyframes")
    def keyframes():
        if session.project.kind != "video":
            return jsonify(keyframes=session.project.describe()["hinted"])
        return jsonify(keyframes=session.project.keyframes())

    @app.get("/api/render")
    def render_status():
        return jsonify(session.render.status())

    @app.post("/api/render")
    def render_start():
        return jsonify(session.render.start())

    @app.delete("/api/render")
    def render_cancel():
        return jsonify(session.render.cancel())

    return app


class Studio:
    """A studio server bound to host:port (0: a free port). serve_forever() in the calling thread (the CLI, which
    stops it with Ctrl-C), or start() in a thread (tests); stop() always, by whoever started it."""

    def __init__(self, project: Project, colorizer, size: int | None = None, host: str = "127.0.0.1", port: int = 0):
        from werkzeug.serving import WSGIRequestHandler, make_server

        if host in WILDCARD_HOSTS:
            # Requests would then name this computer however the client reaches it, and the Host check (against DNS
            # rebinding) needs the one name the studio is reached by.
            raise OutputError(f"--host {host} listens on every address; give the one address to listen on")

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args):  # a line per request would bury the address (and repeat the token)
                pass

        self.session = Session(project, colorizer, size)
        self.app = create_app(self.session)
        try:
            self.server = make_server(host, port, self.app, threaded=True, request_handler=QuietHandler)
        except OSError as exc:
            self.session.close()
            raise OutputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.host = host
        self.session.bind(host, self.server.server_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address with the access token: what the user opens."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.session.port}/?token={self.session.token}"

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="vidcolor-studio-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (when serving in a thread), end a running render (its partial output removed) and close."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()
        self.session.close()
        close = getattr(self.session.project, "frames", None)
        if close is not None:
            close.close()

    def __enter__(self) -> "Studio":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
