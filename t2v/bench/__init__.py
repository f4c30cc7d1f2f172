"""`python -m t2v bench`: our pipeline and diffusers' timed side by side (needs the `bench` extra and a GPU).
A leaf: it imports the library (loader, networks, weights), and no library module imports it.
"""
