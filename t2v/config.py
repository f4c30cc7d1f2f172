"""Model configuration: ModelScope's numbers by name (how each layout's files map onto them: t2v.weights)."""

from __future__ import annotations

from dataclasses import dataclass, field

# The latent scale of the Stable Diffusion KL autoencoder; latents are divided by it before decoding.
LATENT_SCALE = 0.18215
TINY_RANDOM = "tiny-random"  # the model source that needs no files: `tiny_config()` with seeded random weights
# A LoRA style's scale (diffusers' fuse_lora(lora_scale=)), the range the CLI and the bot's styles take: above 0 (0
# is no style), at most 2; published styles are used at about 0.5–1.5, and far beyond, the fused weights overflow and
# the render is NaN (t2v.errors.NonFiniteOutput). The bot's STYLES_FILE takes the same range.
LORA_SCALE_RANGE = (0.0, 2.0)  # exclusive low, inclusive high
PICKED_SEEDS = 2**32  # a seed picked for a request that names none is below this (a request may name any seed)


@dataclass(frozen=True)
class UNetConfig:
    """UNetSD hyper-parameters (model-spec §1, `model_cfg`)."""

    in_dim: int = 4
    dim: int = 320  # base width; level widths are dim * dim_mult
    context_dim: int = 1024  # text-embedding width for cross-attention
    out_dim: int = 4  # eps prediction
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_heads: int = 8  # used ONLY by the first temporal transformer (input_blocks.0.1): 8 x 64 = 512 inner
    head_dim: int = 64  # every other attention layer has channels / head_dim heads of this size
    num_res_blocks: int = 2  # per encoder level; the decoder has one more
    attn_scales: tuple[float, ...] = (1.0, 0.5, 0.25)  # latent scales with spatial+temporal transformers
    temporal_attention: bool = True
    norm_groups: int = 32

    @property
    def embed_dim(self) -> int:
        """Width of the timestep embedding (4 x dim)."""
        return self.dim * 4


@dataclass(frozen=True)
class VAEConfig:
    """KL-f8 autoencoder (`ddconfig` hard-coded in ModelScope's model file; identical to SD's VAE)."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    in_channels: int = 3
    out_ch: int = 3
    z_channels: int = 4
    embed_dim: int = 4
    norm_groups: int = 32


@dataclass(frozen=True)
class TextConfig:
    """OpenCLIP text tower (ViT-H-14's text side); the penultimate block's output then ln_final is used."""

    width: int = 1024
    heads: int = 16
    layers: int = 24  # stored blocks; the last one is skipped ("penultimate")
    vocab_size: int = 49408
    context_length: int = 77
    mlp_ratio: float = 4.0
    skip_last_layers: int = 1  # layer="penultimate"


@dataclass(frozen=True)
class SamplerDefaults:
    """Diffusion schedule and sampling defaults (model-spec §5); a GenerationRequest's defaults come from here."""

    num_timesteps: int = 1000
    beta_start: float = 0.00085  # "linear_sd": betas = linspace(sqrt(start), sqrt(end))**2 in float64
    beta_end: float = 0.0120
    steps: int = 50  # ModelScope's DDIM step count
    guidance: float = 9.0  # hard-coded guide_scale of the ModelScope pipeline
    fps: int = 8  # the clips are 16 frames meant to play over 2 s
    sampler: str = "ddim"  # ModelScope's sampler; t2v.sampling has the others


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build the three networks and run the default generation."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    text: TextConfig = field(default_factory=TextConfig)
    sampler: SamplerDefaults = field(default_factory=SamplerDefaults)
    frames: int = 16  # `max_frames` of configuration.json
    width: int = 256
    height: int = 256
    latent_scale: float = LATENT_SCALE
    name: str = "modelscope-t2v-1.7b"
    is_random: bool = False  # True for the tiny-random preset: its output is noise


def tiny_config() -> ModelConfig:
    """A tiny config with the real structure (every block kind present) for CPU tests and the tiny-random preset."""
    return ModelConfig(
        unet=UNetConfig(dim=32, context_dim=64, dim_mult=(1, 2), num_heads=2, head_dim=16,
                        num_res_blocks=1, attn_scales=(1.0, 0.5)),
        vae=VAEConfig(ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1),
        text=TextConfig(width=64, heads=2, layers=3),
        frames=4, width=64, height=64, name=TINY_RANDOM, is_random=True,
    )

