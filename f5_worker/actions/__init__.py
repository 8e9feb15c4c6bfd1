"""One module per action a job can ask for; each is a callable ``(request, job_id) -> output dict``."""
