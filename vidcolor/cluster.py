"""Segments as Ray tasks: `vidcolor IN OUT --ray ADDRESS` (and `vidcolor batch ... --ray ADDRESS`).

A runner for the segment engine (vidcolor/engine.py), which knows nothing of Ray: RayRunner is called with the
segments still to do and yields each one's record as its task completes; the driver (this process) commits them
to the work folder's manifest and joins OUT. Ray is imported only here, and this module only with --ray.

What the cluster needs. Every node has vidcolor installed (the same version) and sees IN and OUT's folder at the
same path: a shared filesystem (NFS, CephFS, a cloud file share). Each task reads IN itself (seeking to its
segment), writes its segment file and a small progress file into the work folder beside OUT, and returns its
record; nothing but that record travels through Ray. ADDRESS is the head's address as `ray start --head` prints it
(host:port), or `auto` for the cluster this machine belongs to (Ray's own convention).

Resources and failures. A task asks for one GPU where the cluster has GPUs (and runs on that node's GPU), else one
CPU. A worker or node that dies mid-segment makes Ray run the task again (max_retries=MAX_RETRIES), elsewhere if the
node is gone: the segment is written again from its start, under its partial name, so the result is the same. An
error raised by the segment itself (a damaged input, a full disk) is not retried: the job fails with its one-line
reason, and so does a segment whose every retry died. One progress bar: the driver sums the progress files.
"""
from __future__ import annotations

from .errors import VidcolorError

# Retries of a task whose worker or node died (Ray's max_retries); errors the segment raises are not retried.
MAX_RETRIES = 3


class ClusterError(VidcolorError):
    """Ray is missing, the cluster cannot be reached, or a segment failed on the cluster."""


def _ray_segment(segment, spec: dict) -> dict:
    """The task: run one segment on this node's GPU if Ray gave it one, else on its CPU."""
    import ray

    from .engine import worker_segment

    device = "cuda" if ray.get_gpu_ids() else "cpu"  # Ray narrows CUDA_VISIBLE_DEVICES to the task's GPU
    # One torch thread per CPU the task holds (Ray also sets OMP_NUM_THREADS so for its workers).
    record = worker_segment(segment, dict(spec, device=device), cpu_threads=1)
    record["node"] = ray.get_runtime_context().get_node_id()
    return record


class RayRunner:
    """Runs segments on the Ray cluster at address (host:port or auto), connecting on first use."""

    def __init__(self, address: str):
        self.address = address

    def _connect(self):
        try:
            import ray
        except ImportError:
            raise ClusterError('--ray needs Ray, which is not installed; pip install "vidcolor[ray]"') from None
        if not ray.is_initialized():
            try:
                # log_to_driver off: stderr is for vidcolor's progress bar and one-line errors.
                ray.init(address=self.address, log_to_driver=False, logging_level="ERROR")
            except (ConnectionError, RuntimeError, ValueError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
                raise ClusterError(f"cannot connect to the Ray cluster at {self.address}: {first}") from None
        return ray

    def __call__(self, segments, spec: dict, poll):
        ray = self._connect()
        if not segments:
            return
        resources = {"num_gpus": 1} if ray.cluster_resources().get("GPU", 0) >= 1 else {"num_cpus": 1}
        task = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False, **resources)(_ray_segment)
        by_ref = {task.remote(segment, spec): segment for segment in segments}
        pending = list(by_ref)
        from .engine import PROGRESS_POLL_S

        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=PROGRESS_POLL_S)
                poll()
                for ref in done:
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # raised by the segment itself: not retried
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, VidcolorError):
                            raise ClusterError(f"segment {by_ref[ref].index}: {cause}") from None
                        raise ClusterError(f"segment {by_ref[ref].index} failed on the cluster: "
                                           f"{_first_line(cause or exc)}") from None
                    except ray.exceptions.RayError as exc:  # died on every try: worker or node lost
                        raise ClusterError(f"segment {by_ref[ref].index} failed on every one of its "
                                           f"{MAX_RETRIES + 1} tries: {_first_line(exc)}") from None
        finally:
            for ref in pending:  # an error or Ctrl-C: the rest is not wanted any more
                ray.cancel(ref, force=True)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{exc.__class__.__name__}: {lines[-1].strip()}" if lines else exc.__class__.__name__
