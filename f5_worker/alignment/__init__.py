"""Word and character timings by forced alignment: the result types, the backends, their selection, and the quality gate."""
