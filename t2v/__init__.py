"""ModelScope text-to-video (OpenCLIP ViT-H-14 → UNet3D → KL autoencoder) in PyTorch + einops."""

from t2v.diffusers_format import ArchitectureError
from t2v.loader import TINY_RANDOM, convert, load_pipeline
from t2v.pipeline import GenerationCancelled, GenerationRequest, GenerationResult, InvalidRequest, VideoPipeline
from t2v.presets import aspect_sizes
from t2v.preview import Previews, animation
from t2v.video import encode_mp4
from t2v.weights import WeightsError

__all__ = [
    "TINY_RANDOM",
    "ArchitectureError",
    "GenerationCancelled",
    "GenerationRequest",
    "GenerationResult",
    "InvalidRequest",
    "Previews",
    "VideoPipeline",
    "WeightsError",
    "animation",
    "aspect_sizes",
    "convert",
    "encode_mp4",
    "load_pipeline",
]
