"""The Discord layer (the only discord.py code besides bot.app, and bot.characters' use of discord.utils' escapers):
the client, cogs, delivery, replies, permissions.

It turns interactions into calls on bot.jobs and bot.moderation, and their answers and job events into messages.
"""
