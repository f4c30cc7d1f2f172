"""Discord command groups (cogs) of the bot, and what Discord allows every cog's options."""

MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
MAX_DISCORD_INT = 2**53 - 1  # Discord's integer options are limited to ±2^53
MAX_JOB_ID = 2**31 - 1  # jobs.id is a 32-bit INTEGER (PostgreSQL refuses a larger value in a query: an error, not None)
