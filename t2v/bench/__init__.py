"""`python -m t2v bench`: our pipeline and diffusers' timed side by side (needs the `bench` extra and a GPU).
A leaf: it imports the library (loader, networks, weights), and no library module imports it.
"""

KERNEL_CHECKS = ("attention", "fp8", "conv")  # bench --kernels: temporal attention, fp8 Linear, convolutions
