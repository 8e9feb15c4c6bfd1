"""The one exception a job may raise on purpose: it becomes RunPod's ``{"error": ...}``."""


class JobError(Exception):
    """A problem with a job's input (or a resource it names) that the caller can fix.

    The message always names the field first, so a client can point at it:
    ``"ref_audio_base64: not valid base64"``.
    """

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")
