"""Release compatibility: a checkpoint in the authors' key layout (random values) converts, loads, and runs with
the released code's behaviour.

Official behaviours checked: LoRA keys w_a/w_b_{2i} -> q and {2i+1} -> v of block i, rank taken from the file (5,
not our default 4); H-SAM's block order (cross-attention before self-attention) in both decoders; stage-2 input
2·(E + no_mask_embed) in place of the inert CMAttn; fusion by averaging logits with stage 1 bilinearly upsampled;
SAM's position embedding resized 64 -> 32 on load; dead tensors skipped and unknown ones rejected.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hsam
from hsam.network import HSAMConfig, build_hsam
from hsam.weights import CheckpointError
from hsam.models.official import _RENAMES
from hsam.models.convert import convert_official
from hsam.models.model_dir import trainable_state

RANK = 5


def _official_key(ours: str) -> str:
    if ".attn.qkv." in ours:
        block = int(ours.split(".")[3])
        part = ours.split(".")[-2]  # a_q, b_q, a_v, b_v
        return f"w_{part[0]}_{2 * block + (part[2] == 'v'):03d}"
    for official, mine in _RENAMES:
        if ours.startswith(mine):
            return official + ours[len(mine):]
    raise KeyError(ours)


def _dead_tensors():
    dead = {f"prompt_encoder.point_embeddings.{i}.weight": torch.randn(1, 256) for i in range(11)}
    dead["prompt_encoder.not_a_point_embed.weight"] = torch.randn(1, 256)
    dead["prompt_encoder.mask_downscaling.0.weight"] = torch.randn(4, 1, 2, 2)
    for stage in ("mask_decoder", "mask_decoder2"):
        for i in range(3):
            dead[f"{stage}.iou_prediction_head.layers.{i}.weight"] = torch.randn(9 if i == 2 else 256, 256)
    for layer in (0, 1):
        for attn in ("cross_attn_token_to_image", "cross_attn_image_to_token"):
            for norm, width in (("norm1", 196), ("norm2", 9), ("norm3", 1024)):
                dead[f"mask_decoder2.transformer2.layers.{layer}.{attn}.{norm}.weight"] = torch.randn(width)
    for name in ("self_attn.q_proj", "self_attn2.v_proj", "mlp.lin1"):
        dead[f"mask_decoder2.{name}.weight"] = torch.randn(8, 8)
    dead["mask_decoder2.norm1.weight"] = torch.randn(1024)
    dead["mask_decoder2.med_sel.0.weight"] = torch.randn(1, 9)
    return dead


@pytest.fixture(scope="module")
def release_files(tmp_path_factory):
    from segment_anything import sam_model_registry

    root = tmp_path_factory.mktemp("release")
    torch.manual_seed(11)
    sam_path = root / "sam_vit_b_01ec64.pth"
    torch.save(sam_model_registry["vit_b"]().state_dict(), sam_path)
    source = build_hsam(HSAMConfig(backbone="sam_vit_b", lora_rank=RANK, mode="release", cmattn=False),
                        "pretrained", checkpoint=sam_path, seed=5)
    for name, p in source.named_parameters():
        if name.endswith(("b_q.weight", "b_v.weight")):
            torch.nn.init.normal_(p, std=0.02)
    release = {_official_key(k): v for k, v in trainable_state(source).items()}
    release.update(_dead_tensors())
    release.update({"prompt_encoder2." + k[len("prompt_encoder."):]: v for k, v in list(release.items())
                    if k.startswith("prompt_encoder.")})
    hsam_path = root / "220_epoch_299.pth"
    torch.save(release, hsam_path)
    return sam_path, hsam_path, source.eval(), release


def test_converted_release_checkpoint_runs_the_released_behaviour(release_files, tmp_path):
    sam_path, hsam_path, source, release = release_files
    out_dir = convert_official(sam_path, hsam_path, tmp_path / "converted")
    model = hsam.load_model(out_dir, merge_lora=False)
    cfg = model.config
    assert (cfg.backbone, cfg.lora_rank, cfg.mode, cfg.num_classes) == ("sam_vit_b", RANK, "release", 9)
    assert model.card["labels"][7]["name"] == "pancreas"
    blk = model.backbone.encoder.blocks[3].attn.qkv
    assert torch.equal(blk.a_q.weight, release["w_a_006"]) and torch.equal(blk.a_v.weight, release["w_a_007"])
    assert torch.equal(blk.b_v.weight, release["w_b_007"])
    assert all(layer.block_order == "hsam" for layer in model.stage1.transformer.layers)
    assert all(layer.block_order == "hsam" for layer in model.stage2.transformer.layers)

    x = torch.rand(1, 3, 512, 512)
    out = model.predict_logits(x)
    assert out["stage1"].shape == (1, 9, 128, 128) and out["stage2"].shape == (1, 9, 512, 512)
    torch.testing.assert_close(out["fused"], source.predict_logits(x)["fused"])
    with torch.inference_mode():  # the released stage-2 path, written out by hand
        e = model.backbone(x)
        pe, dense = model.prompt.image_pe(32), model.prompt.dense(32)
        s1 = model.stage1(e, pe, dense)
        prior = F.interpolate(s1.logits, size=(32, 32), mode="bilinear", align_corners=False)
        logits2 = model.stage2(2 * (e + dense), pe, prior.softmax(1).flatten(2), s1.pixel_features)
    torch.testing.assert_close(out["stage2"], logits2)
    up1 = F.interpolate(out["stage1"], size=(512, 512), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out["fused"], (up1 + out["stage2"]) / 2)


def test_unknown_tensor_is_rejected(release_files, tmp_path):
    sam_path, _, _, release = release_files
    bad = dict(release, **{"mask_decoder2.surprise.weight": torch.zeros(1)})
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(CheckpointError, match="unexpected tensor 'mask_decoder2.surprise.weight'"):
        convert_official(sam_path, path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_backbone_mismatch_names_both_files(release_files, tmp_path):
    sam_path, _, _, release = release_files
    vit_l_like = dict(release)
    for i in range(24, 48):  # a ViT-L file has 48 LoRA pairs
        vit_l_like[f"w_a_{i:03d}"] = torch.zeros(RANK, 1024)
        vit_l_like[f"w_b_{i:03d}"] = torch.zeros(1024, RANK)
    path = tmp_path / "vit_l_epoch.pth"
    torch.save(vit_l_like, path)
    with pytest.raises(CheckpointError) as exc:
        convert_official(sam_path, path, tmp_path / "out")
    message = str(exc.value)
    assert "\n" not in message and sam_path.name in message and "sam_vit_l" in message
