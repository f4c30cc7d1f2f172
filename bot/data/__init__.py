"""Data files shipped with the bot (the default denylist)."""
