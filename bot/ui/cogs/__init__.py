"""Discord command groups (cogs) of the bot."""
