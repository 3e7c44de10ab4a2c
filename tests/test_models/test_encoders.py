"""Image and text encoders: output views, shapes, offline-only weights."""
import pytest
import torch

from mmfusion.models import HFTextEncoder, TimmEncoder

BERT = dict(model_type='bert', vocab_size=50, hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=64, max_position_embeddings=16)


def test_timm_encoder_grid_tokens_and_pooled_view():
    enc = TimmEncoder('resnet18', layers=[1, 1, 1, 1], channels=[8, 16, 32, 64], stem_width=8)
    out = enc(torch.randn(2, 3, 64, 64))
    assert enc.out_dim == 64
    assert out.tokens.shape == (2, 4, 64)  # 2x2 grid at stride 32
    torch.testing.assert_close(out.pooled, out.tokens.mean(1))
    assert out.mask is None


def test_timm_encoder_feature_pyramid():
    enc = TimmEncoder('resnet18', layers=[1, 1, 1, 1], channels=[8, 16, 32, 64], stem_width=8,
                      out_indices=(1, 2, 3))
    out = enc(torch.randn(2, 1 + 2, 64, 64))
    assert [m.shape[1:] for m in out.maps] == [(8, 16, 16), (16, 8, 8), (32, 4, 4)]
    assert enc.out_dim == 32 and out.tokens.shape == (2, 16, 32)


def test_timm_encoder_never_downloads_and_freezes():
    with pytest.raises(ValueError, match='never downloads'):
        TimmEncoder('resnet18', pretrained=True)
    with pytest.raises(FileNotFoundError, match='checkpoint file not found'):
        TimmEncoder('resnet18', checkpoint='/nonexistent/weights.pth')
    enc = TimmEncoder('resnet18', layers=[1, 1, 1, 1], channels=[8, 16, 32, 64],
                      stem_width=8, frozen=True)
    enc.train()
    assert not any(p.requires_grad for p in enc.parameters())
    assert not enc.model.training  # batch-norm statistics stay fixed


def test_timm_encoder_loads_local_weights(tmp_path):
    import timm
    src = timm.create_model('resnet18', layers=[1, 1, 1, 1], channels=[8, 16, 32, 64],
                            stem_width=8, num_classes=0)
    path = tmp_path / 'weights.pth'
    torch.save(src.state_dict(), path)
    enc = TimmEncoder('resnet18', checkpoint=str(path), layers=[1, 1, 1, 1],
                      channels=[8, 16, 32, 64], stem_width=8)
    enc.init_weights()  # must not overwrite the loaded weights
    torch.testing.assert_close(enc.model.conv1.weight, src.conv1.weight)


def test_hf_text_encoder_masks_and_pooling():
    torch.manual_seed(0)
    enc = HFTextEncoder(config=BERT, pooling='mean')
    ids = torch.tensor([[2, 5, 6, 3, 0], [2, 7, 3, 0, 0]])
    mask = (ids != 0).long()
    out = enc(dict(input_ids=ids, attention_mask=mask))
    assert out.tokens.shape == (2, 5, 32) and enc.out_dim == 32
    assert out.mask.tolist() == mask.bool().tolist()
    torch.testing.assert_close(out.pooled[1], out.tokens[1, :3].mean(0))
    # every parameter is used (no unused pooler head: it would break DDP)
    out.pooled.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_hf_text_encoder_needs_a_local_source():
    with pytest.raises(ValueError, match='exactly one'):
        HFTextEncoder()
    with pytest.raises(FileNotFoundError, match='local folder'):
        HFTextEncoder(pretrained='bert-base-uncased')
