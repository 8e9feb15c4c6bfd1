"""Text as people write it, turned into what is spoken: markup, normalisation."""
