"""Annotation of footage: which stretches become rows and which face each row is about.

* :mod:`.speech`: where the speech is and the voice's loudness, from each video's voice stream (Silero VAD and the
  10-ms level, computed during extraction: annotation decodes nothing);
* :mod:`.segments`: interval arithmetic: utterances from speech and words, the pause rule, long rows split, windows;
* :mod:`.rows`: the rows of each video (utterances, silent faces, manifest segments or windows), speech coverage and
  what each row is made of;
* :mod:`.faces`: the active speaker of each row, by mouth-voice synchrony;
* :mod:`.settings`: a reused store's visual settings, adopted or refused, never re-extracted silently.

The store is read only through :mod:`pipeline.views`; the word-in-segment rule is :func:`pipeline.views.words_inside`.
"""
