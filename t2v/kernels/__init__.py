"""Hand-written kernels for the fast path, each opt-in and each with the stock PyTorch op it replaces as fallback:
temporal_attention (Triton: many short frame sequences per program) and fp8 (e4m3 Linear layers via _scaled_mm).
"""
