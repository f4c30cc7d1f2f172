"""The HTTP side, served by aiohttp beside the gateway: the web gallery, /healthz and /metrics.

Discord-free: it reads the service, the showcase and the kept videos; it never changes them.
"""
