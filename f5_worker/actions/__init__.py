"""One module per action a job can ask for; each is called the same way, ``action(request, job)`` (job.py), and
returns the job's output dict, or a streamed job's items."""
