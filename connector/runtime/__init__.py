"""The embedded runtime: plays the SOAR platform's part offline.

It runs actions (:mod:`.engine` for playbooks), stores containers, artifacts
and run records (:mod:`.store`), and triggers on new alerts (:mod:`.poller`).
"""
