"""The only code that touches a pipeline: executors (threads, Ray actors), the work, previews, models, compiles.

Never Discord or the database; torch is imported only inside functions, so importing the bot loads none.
"""
