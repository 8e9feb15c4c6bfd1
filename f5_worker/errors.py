"""The one exception a job may raise on purpose (it becomes RunPod's ``{"error": ...}``), and the GPU's own."""

import ctypes

from f5_worker.logs import cut

MAX_FIELD_CHARS = 120  # a field named in an error (an unknown field's name is the job's own)
MAX_PROBLEM_CHARS = 600
# Errors of the worker's storage failing (its bucket or volume), not of the request: the same request may well
# work in a moment. ``storage`` is every storage error's field; a finished result that could not be uploaded
# is its ``output``'s. Over HTTP they answer 503 (OpenAI's SDKs then try again), in OpenAI's form server_error.
STORAGE_FIELD = "storage"
# What a 503 (the models loading, the storage failing, a stopped job) asks the client to wait, in seconds: the
# HTTP server's and the page's forwarder's alike.
UNAVAILABLE_RETRY_AFTER_S = 5
RESULT_NOT_UPLOADED = "could not upload the result"
_UNAVAILABLE = (f"{STORAGE_FIELD}: ", f"output: {RESULT_NOT_UPLOADED}")


class JobError(Exception):
    """A problem with a job's input (or a resource it names) that the caller can fix.

    The message always names the field first, so a client can point at it:
    ``"ref_audio_base64: not valid base64"``.
    """

    def __init__(self, field: str, problem: str):
        # The last line of defence against echoing a huge value: messages that quote the job's values
        # cut them first (logs.echo); whatever still gets here long is cut too.
        self.field = cut(field, MAX_FIELD_CHARS)
        self.problem = cut(problem, MAX_PROBLEM_CHARS)
        super().__init__(f"{self.field}: {self.problem}")


def http_status(error: str) -> int:
    """The HTTP status of a native error (``<field>: <problem>``): 500 for the worker's own failures
    (``internal:``), 503 for its storage failing and a stopped job (``stopped:``), 400 for the request's."""
    if error.startswith("internal:"):
        return 500
    if error.startswith((*_UNAVAILABLE, "stopped:")):
        return 503
    return 400


def summary(exc: BaseException, limit: int | None = None) -> str:
    """``Type: first line of the message`` (cut to ``limit``), for a log line or a reply: some run to pages."""
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:limit]}"


def is_gpu_out_of_memory(exc: BaseException) -> bool:
    """CUDA ran out of memory: that job fails, the worker frees its cache and serves on."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or any(
        text in str(exc) for text in ("CUDA out of memory", "CUDA error: out of memory"))


def is_gpu_failure(exc: BaseException) -> bool:
    """A CUDA error other than running out of memory (an illegal address, a device-side assert, an ECC fault).

    After one the process's CUDA context is unusable: every later CUDA call fails the same
    way, so code that catches broad exceptions must let these through to ``Worker.handle``.
    """
    import torch

    return not is_gpu_out_of_memory(exc) and (isinstance(exc, torch.AcceleratorError) or "CUDA error:" in str(exc))


def free_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def free_host_memory() -> None:
    """Give the memory a job freed back to the system (glibc's ``malloc_trim``).

    glibc keeps freed blocks for reuse, so after a job that decoded minutes of audio the process
    would stay hundreds of MB above its baseline, per concurrent job, until some later allocation
    happens to reuse them. Trimming costs a millisecond or so; elsewhere than glibc it does nothing.
    """
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None
