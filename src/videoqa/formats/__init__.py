"""Sidecars that editors and asset managers read: OpenTimelineIO timelines and XMP.

Both mark each videoqa clip on the video's own timeline in whole frames (``markers``); each
format is one module that turns a report into the file's text (``otio``, ``xmp``), and
``videoqa.sidecars`` writes them like the other sidecars (atomically, never over a file of the
user's). Neither needs a package beyond the standard library.
"""
