"""Aligner backends behind :mod:`f5_worker.alignment` (sphinx, ctc, estimate) and their text helpers."""
