"""Synthesis as one service (service.py) that every front door calls with a request and its job."""
