"""Hand-written kernels for the fast path, each opt-in and each with the stock PyTorch op it replaces as fallback:
temporal_attention (Triton: many short frame sequences per program), fp8 (e4m3 Linear layers via _scaled_mm, and
opt-in 3×3 convolutions) and conv3x3 (Triton: the implicit-GEMM 3×3 convolution fp8's convolutions run on).
"""
