"""Small transformers for tests, built from torchvision's own classes (the code
paths of vit_b_16 and swin_t at a fraction of the cost), loadable by import path:
`atlas build tests.tinytransformers:tiny_vit`.
"""

from torchvision.models import SwinTransformer, VisionTransformer

from atlas.model.spec import InputRule, ModelSpec

TINY_VIT_SIZE = 32


def tiny_vit():
    """ViT on 32 px: 4x4 patches of 8 px after one CLS token; 2 blocks, width 16, MLP 32."""
    module = VisionTransformer(image_size=TINY_VIT_SIZE, patch_size=8, num_layers=2, num_heads=2,
                               hidden_dim=16, mlp_dim=32, num_classes=10)
    return module, ModelSpec(rule=InputRule("exactly", TINY_VIT_SIZE), crop_size=TINY_VIT_SIZE, resize_size=36,
                             class_names=tuple(f"class {i}" for i in range(10)))


def tiny_swin():
    """Swin with 2 stages, width 8, windows of 2: channels-last maps [B, H, W, C] throughout."""
    return SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 1], window_size=[2, 2],
                           num_classes=10)
