"""The folder-watch daemon: watcher → settle → job store → worker process → adapters.

``config`` reads what to do per folder, ``jobstore`` remembers every file identity in SQLite,
``scanner`` decides which files count and when they have settled, ``watcher`` turns the
operating system's events into paths, ``worker`` runs the pipeline in a separate process with a
time limit, and ``daemon`` ties them together.
"""
