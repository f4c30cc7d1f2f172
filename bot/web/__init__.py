"""The HTTP side, served by aiohttp beside the gateway: the web gallery, /healthz and /metrics.

Discord-free: it reads the service, the showcase and the kept videos; it never changes them, but for the poster
frame of a kept video it makes on the first request for one that has none.
"""
