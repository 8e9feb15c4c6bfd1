"""Text as it is said: numbers read in words (``numbers``) and whole texts normalised for synthesis
(``normalize``). Imports nothing here, so ``alignment.textnorm`` can use ``numbers`` without pulling in
``normalize``, which imports the alignment's types."""
