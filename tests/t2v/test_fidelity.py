"""Our networks and sampler against ModelScope's own modules (loaded by file path from the modelscope wheel)."""

from dataclasses import replace

import open_clip
import pytest
import torch

from t2v.autoencoder import AutoencoderKL
from t2v.config import TextConfig, VAEConfig
from t2v.sampling import GuidedDenoiser, sample_ddim
from t2v.schedule import Schedule
from t2v.text_encoder import TextEncoder, Tokenizer
from t2v.unet import UNet3D
from t2v.weights.modelscope import read_text_encoder, read_unet, read_vae
from tests.t2v.layouts import SMALL_UNET, openclip_model, reference_unet, reference_vae, save_lightning_checkpoint
from tests.t2v.reference import load_reference

# The reference decoder hard-codes a 1024-wide text context, so UNet comparisons use the published width.
REF_UNET = replace(SMALL_UNET, dim=64, head_dim=32, num_heads=4, context_dim=1024, dim_mult=(1, 2, 4, 4),
                   num_res_blocks=2, attn_scales=(1.0, 0.5, 0.25))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| relative to max |a|."""
    return float((a - b).abs().max() / a.abs().max())


@pytest.fixture(scope="module")
def unet_pair(tmp_path_factory):
    """(reference UNetSD, our UNet3D loaded from the reference's weights saved as text2video_pytorch_model.pth)."""
    ref = reference_unet(REF_UNET, seed=1, scale=0.08)
    path = tmp_path_factory.mktemp("unet") / "text2video_pytorch_model.pth"
    torch.save(ref.state_dict(), path)
    ours = UNet3D(REF_UNET).eval()
    ours.load_state_dict(read_unet(path), strict=True)
    return ref, ours


def test_unet_has_the_published_key_names_and_count(unet_pair):
    ref, ours = unet_pair
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert any(".temopral_conv." in key for key in ours.state_dict())
    assert ours.state_dict()["input_blocks.0.1.proj_in.weight"].shape == (4 * 32, 64, 1)  # 4 heads x 32 on 64 ch


def test_unet_matches_reference_in_fp32(unet_pair):
    ref, ours = unet_pair
    torch.manual_seed(3)
    x, t, y = torch.randn(2, 4, 5, 16, 16), torch.tensor([981, 1]), torch.randn(2, 77, 1024)
    with torch.no_grad():
        expected, got = ref(x, t, y), ours(x, t, y)
    assert rel_err(expected, got) <= 1e-5


def test_temporal_layers_mix_frames_but_never_see_their_order_beyond_the_convs(unet_pair):
    _, ours = unet_pair
    torch.manual_seed(4)
    x, t, y = torch.randn(1, 4, 3, 16, 16), torch.tensor([500]), torch.randn(1, 77, 1024)
    with torch.no_grad():
        base, changed = ours(x, t, y), ours(torch.cat([x[:, :, :1] + 1, x[:, :, 1:]], dim=2), t, y)
    assert (base[:, :, 2] - changed[:, :, 2]).abs().max() > 1e-4  # frame 0 influences frame 2


def test_published_config_builds_the_published_parameter_count():
    with torch.device("meta"):
        unet = UNet3D(replace(REF_UNET, dim=320, head_dim=64, num_heads=8))
    assert sum(p.numel() for p in unet.parameters()) == 1_411_233_860
    assert len(unet.state_dict()) == 1480
    assert sum(1 for k in unet.state_dict() if ".temopral_conv." in k) == 352


def test_kl_decoder_and_encoder_match_reference_from_a_lightning_checkpoint(tmp_path):
    ref = reference_vae(ch=32, seed=2)
    path = tmp_path / "VQGAN_autoencoder.pth"
    save_lightning_checkpoint(ref.state_dict(), path)
    ours = AutoencoderKL(VAEConfig(ch=32)).eval()
    ours.load_state_dict(read_vae(path), strict=True)
    torch.manual_seed(5)
    z, image = torch.randn(3, 4, 8, 8), torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(ref.decode(z), ours.decode(z)) <= 1e-5
        assert rel_err(ref.encode(image).mean, ours.encode(image)[0]) <= 1e-5


def test_published_vae_has_the_published_parameter_count():
    with torch.device("meta"):
        vae = AutoencoderKL(VAEConfig())
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
    assert len(vae.state_dict()) == 248


def test_text_embeddings_equal_openclip_penultimate_plus_ln_final(tmp_path):
    clip = openclip_model(width=64, layers=4, seed=3)
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(clip.state_dict(), path)
    cfg = TextConfig(width=64, heads=1, layers=4)
    ours = TextEncoder(cfg).eval()
    ours.load_state_dict(read_text_encoder(path, cfg), strict=True)
    tokens = open_clip.tokenize(["a panda eating bamboo on a rock", ""])
    with torch.no_grad():
        x = clip.token_embedding(tokens) + clip.positional_embedding
        for block in clip.transformer.resblocks[:-1]:  # penultimate: skip the last block
            x = block(x, attn_mask=clip.attn_mask)
        expected = clip.ln_final(x)
        assert torch.allclose(ours(tokens), expected, atol=1e-6, rtol=0)


def test_tokenizer_pads_with_zero_and_reports_truncation():
    tokens = Tokenizer()(["a panda eating bamboo on a rock", "", "panda " * 100])
    assert tokens.ids[0, :10].tolist() == [49406, 320, 12952, 4371, 16748, 525, 320, 2172, 49407, 0]
    assert tokens.ids[1, :3].tolist() == [49406, 49407, 0] and int(tokens.ids[1, 2:].abs().sum()) == 0
    assert tokens.truncated == (False, False, True)
    assert tokens.ids.shape == (3, 77) and tokens.ids[2, -1] == 49407


def test_ddim_timesteps_are_981_to_1():
    grid = Schedule().ddim_timesteps(50)
    assert grid[0] == 981 and grid[-1] == 1 and len(grid) == 50 and grid[0] - grid[1] == 20
    assert Schedule().alpha_bar(-1) == pytest.approx(0.99915, abs=1e-5)


def test_full_50_step_ddim_with_guidance_matches_reference_loop():
    diffusion = load_reference("diffusion")
    cfg = replace(REF_UNET, dim_mult=(1, 2), attn_scales=(1.0, 0.5), num_res_blocks=1)
    ref = reference_unet(cfg, seed=6, scale=0.06)
    ours = UNet3D(cfg).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    torch.manual_seed(7)
    noise, cond, uncond = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 77, 1024), torch.randn(1, 77, 1024)
    betas = diffusion.beta_schedule("linear_sd", 1000, init_beta=0.00085, last_beta=0.0120)
    gd = diffusion.GaussianDiffusion(betas=betas, mean_type="eps", var_type="fixed_small", loss_type="mse")
    expected = gd.ddim_sample_loop(noise=noise, model=ref, model_kwargs=[{"y": cond}, {"y": uncond}],
                                   guide_scale=9.0, ddim_timesteps=50, eta=0.0)
    schedule = Schedule()
    got = sample_ddim(GuidedDenoiser(ours, cond, uncond, 9.0), noise.clone(), schedule, schedule.ddim_timesteps(50))
    assert rel_err(expected, got) <= 1e-4
