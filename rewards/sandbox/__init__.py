"""Sandboxed execution of untrusted programs, judged by tests they cannot reach.

``client`` is the trainer's side; ``zygote`` (with ``isolation``, ``candidate`` and ``judge``)
runs in processes of its own and imports nothing but the standard library and this folder.
"""
