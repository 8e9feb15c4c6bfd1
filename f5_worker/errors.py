"""The one exception a job may raise on purpose (it becomes RunPod's ``{"error": ...}``), and the GPU's own."""


class JobError(Exception):
    """A problem with a job's input (or a resource it names) that the caller can fix.

    The message always names the field first, so a client can point at it:
    ``"ref_audio_base64: not valid base64"``.
    """

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


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
