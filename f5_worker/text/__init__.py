"""Text as it is said, below the aligner: the tables of how each language says things (``languages``),
numbers in words (``numbers``), the reported words of a text and what is said for each (``tokens``), the
text normalized for synthesis (``normalize``; its rules in ``rewrite_rules``, what they recognise in
``rewrite_patterns``, the pass that tries them in ``rewrite_scan``; its map back to the text as written in
``normalized_text``), timings mapped back to the words as written (``written_timings``),
and a job's markup (``markup``). Nothing here imports ``f5_worker.alignment``: the aligner reads text, and
text reads only the value types of its timings (``f5_worker.timed_text``)."""
