"""Discord command groups (cogs) of the bot, and what Discord allows every cog's options."""

MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
MAX_DISCORD_INT = 2**53 - 1  # Discord's integer options are limited to ±2^53
