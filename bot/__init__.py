"""The Discord bot: ModelScope's text-to-video (t2v) behind slash commands, its jobs logged in storage.

Folders by concern (docs/architecture.md): jobs, gpu, moderation, ui, web; app.py builds it all, python -m bot runs it.
"""
