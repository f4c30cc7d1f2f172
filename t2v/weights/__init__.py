"""Checkpoint layouts: one module per published layout (modelscope, diffusers, our export) and their shared parts
(files: reading, writing, strict checks; keys: every rename). Imports config, errors, networks and
ellipsis (a cut path in a message); never pipelines.
"""
