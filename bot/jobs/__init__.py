"""The loop side of a video job, Discord-free: the request, fair queue, admission, dispatcher, outcomes, the service.

May import bot.gpu and bot.moderation (never Discord, torch or a pipeline); the database is the truth across restarts.
"""
